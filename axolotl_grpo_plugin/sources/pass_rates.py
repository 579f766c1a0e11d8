"""Each training row's pass rate: what `axolotl-grpo probe --pass-rates FILE` writes, and what
`grpo_plugin.pass_rate_filter` trains on (issue 66; docs/dynamic-sampling.md).

Why: a prompt the model always or never solves gives groups without reward spread. Measuring
difficulty offline by sampling many answers per problem (as Reasoning360 does) and training on the
band in between spends generation on prompts that teach. The file is JSON Lines, one row per
probed training prompt: `{"key", "pass_rate", "samples", "row", "prompt"}`. A row is found again
by `key`, a hash of its prompt after the dataset transform (the messages the trainer generates
from), so the filter needs no second copy of the data and survives a reordered dataset.

The band is exclusive, as `probe --band` is: a row trains when `min < pass_rate < max`; the
default (0, 1) keeps the prompts the model neither always nor never solves.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import PluginError, Problem


FILE_KEY = "grpo_plugin.pass_rate_filter.file"
PROMPT_CHARS = 200  # of the prompt kept in the file, for a reader


def prompt_key(prompt: Any) -> str:
    """A training prompt's identity: a hash of its messages (or text) as the transform made them.
    Keys a dataset's storage adds as null (a message without `tool_calls` beside one with) are
    left out, so a row reads the same from a file and from Axolotl's prepared dataset."""
    def plain(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items() if v is not None}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    text = json.dumps(plain(prompt), sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:24]


def in_band(rate: float, low: float, high: float) -> bool:
    """The band's one rule: strictly inside (low, high)."""
    return low < rate < high


def prompt_text(prompt: Any) -> str:
    """The last message's text (or the prompt itself), shortened: what a reader of the file sees."""
    if isinstance(prompt, list) and prompt and isinstance(prompt[-1], Mapping):
        prompt = prompt[-1].get("content", "")
    return str(prompt)[:PROMPT_CHARS]


def record(prompt: Any, rate: float, samples: int, row: int) -> dict:
    return {"key": prompt_key(prompt), "pass_rate": rate, "samples": samples, "row": row,
            "prompt": prompt_text(prompt)}


def _fail(key: str, path: Any, message: str, fix: str) -> PluginError:
    return PluginError([Problem(key, str(path), message, fix)])


def read(path: str | os.PathLike, key: str = FILE_KEY) -> dict[str, float]:
    """key -> pass rate of every row of a pass-rates file. A torn last line (a probe killed while
    writing) is left out; a missing file, or a line that is not a pass-rate record, raises a
    PluginError naming `key` (the config key or the flag that gave the file) and the fix."""
    path = Path(path)
    probe_fix = "write it with `axolotl-grpo probe CONFIG --prompts all --pass-rates FILE`"
    if not path.is_file():
        where = "" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"
        raise _fail(key, path, f"no such file{where}.", probe_fix)
    rates: dict[str, float] = {}
    with open(path, "rb") as handle:
        lines = handle.read().split(b"\n")
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            if number == len(lines):  # the last line, without its newline: a torn write
                continue
            raise _fail(key, path, f"line {number} is not JSON: a pass-rates file is JSON Lines, one "
                        '{"key", "pass_rate", ...} object per row.', probe_fix) from None
        rate = entry.get("pass_rate") if isinstance(entry, dict) else None
        if not (isinstance(entry, dict) and isinstance(entry.get("key"), str) and isinstance(rate, (int, float))
                and not isinstance(rate, bool) and math.isfinite(rate) and 0 <= rate <= 1):
            raise _fail(key, path, f"line {number} is not a pass-rate record (an object with a string `key` and "
                        "a `pass_rate` in [0, 1]).", probe_fix)
        rates[entry["key"]] = float(rate)
    return rates


def append(path: str | os.PathLike, records: Iterable[dict]) -> None:
    """Add records as whole lines and make them durable (a probe killed after this keeps them);
    a torn last line left by a kill is cut first, so the file stays JSON Lines."""
    from ..system.safe_files import open_nofollow

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    with open_nofollow(path, "ab+", buffering=0) as handle:
        size = os.fstat(handle.fileno()).st_size
        if size and os.pread(handle.fileno(), 1, size - 1) != b"\n":
            tail = os.pread(handle.fileno(), size, 0)
            os.ftruncate(handle.fileno(), tail.rfind(b"\n") + 1)
        handle.write(payload)
        os.fsync(handle.fileno())


def band_count(rates: Mapping[str, float], low: float, high: float) -> int:
    return sum(in_band(rate, low, high) for rate in rates.values())


def filter_rows(dataset: Any, rates: Mapping[str, float], low: float, high: float) -> tuple[Any, dict[str, int]]:
    """The dataset's rows whose prompt has a pass rate in the band, and the counts: `rows` in the
    dataset, `kept`, `unrated` (no pass rate in the file)."""
    keys = [prompt_key(p) for p in dataset["prompt"]]
    keep = [i for i, k in enumerate(keys) if k in rates and in_band(rates[k], low, high)]
    counts = {"rows": len(keys), "kept": len(keep), "unrated": sum(k not in rates for k in keys)}
    return dataset.select(keep), counts


def apply(settings: Any, trainer: Any) -> dict[str, int] | None:
    """Filter the trainer's training set to the band of `grpo_plugin.pass_rate_filter` (None: off),
    after the trainer is built and before its dataloader is (TRL builds that in `train()`, and a
    GRPO run's step count comes from it); returns the counts. A band that keeps none of the
    training set's rows (a file probed on other data) raises, before any step."""
    if settings is None:
        return None
    dataset, counts = filter_rows(trainer.train_dataset, read(settings.file), settings.min, settings.max)
    if not counts["kept"]:
        raise PluginError([Problem("grpo_plugin.pass_rate_filter", settings.model_dump(),
                                   f"none of the {counts['rows']} training rows has a pass rate in "
                                   f"({settings.min:g}, {settings.max:g}) in {settings.file} ({counts['unrated']} "
                                   "have none there: was it probed on another dataset or transform?).",
                                   "probe this config again (`axolotl-grpo probe CONFIG --prompts all "
                                   "--pass-rates FILE`), or widen the band")])
    trainer.train_dataset = dataset
    return counts
