"""Load the raw rows of a config's dataset entries as Axolotl 0.19 does.

Shared by the stats tool (`seqstats`), the evaluator (`evaluate`) and the config
checks (a dry run of the transform on the first rows), so the rows
they count or score are the rows the trainer reads. `load_rows` mirrors
Axolotl's `load_dataset_with_config` (axolotl/utils/data/shared.py) instead of
calling it, because importing that module costs seconds and the whole training
stack; only remote filesystems (s3://, gs://, ...) go through Axolotl's loader.

Every failure is a `DataSourceError` whose lines each name the field, the value
and the fix; the tools turn it into their own error type (`StatsError`,
`EvalError`) so their CLIs print it as they print their other errors. The config
itself is read by `axolotl_grpo_plugin.config.load`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import PluginError, Problem
from ..system.paths import user_path


# Axolotl 0.19's suffix -> builder table (utils/data/shared.py `EXTENSIONS_TO_DATASET_TYPES`);
# like `get_dataset_type`, a suffix anywhere in the path counts, and json is the default.
EXTENSIONS_TO_DATASET_TYPES = {".parquet": "parquet", ".arrow": "arrow", ".csv": "csv", ".txt": "text"}
DATA_SUFFIXES = {".json", ".jsonl", ".parquet", ".csv", ".arrow", ".txt"}
REMOTE_PREFIXES = ("s3://", "gs://", "gcs://", "adl://", "abfs://", "az://", "oci://")


class DataSourceError(PluginError):
    """A config or dataset problem the user can fix: one line per problem, each
    `field = value: what is wrong. Fix: what to do.`"""


@contextmanager
def raised_as(error_type: type[PluginError]):
    """Re-raise a shared module's PluginError (data, transform, template, tokenizer, config) as
    a tool's own error type, with the same message, so its CLI prints it like its other errors."""
    try:
        yield
    except PluginError as exc:
        if isinstance(exc, error_type):
            raise
        raise error_type("\n".join(p.line() for p in exc.problems) or exc.text) from None


def _fail(key: str, value: Any, message: str, fix: str) -> DataSourceError:
    return DataSourceError([Problem(key, value, message, fix)])


# --- the dataset entries ------------------------------------------------------------------------

@dataclass
class DatasetSpec:
    """One `datasets:` / `test_datasets:` entry: where its rows come from and its `type`.

    `key` names it in messages (`datasets[0]`, or `--dataset` for an override).
    `path` may also be an in-memory `datasets.Dataset` (Python API).
    """

    path: Any
    split: str | None = None
    name: str | None = None
    data_files: Any = None
    revision: str | None = None
    ds_type: str | None = None
    transform: str | None = None
    key: str = "datasets[0]"

    @property
    def is_override(self) -> bool:
        """Given by a flag or argument (`--dataset`, `dataset`), not a config entry (`datasets[0]`)."""
        return not self.key.endswith("]")

    def field(self, name: str) -> str:
        """The config field for messages: `datasets[0].split`; an override names the flag or argument
        beside it: `--dataset` (its path), `--split`."""
        if not self.is_override:
            return f"{self.key}.{name}"
        if name == "path":
            return self.key
        return f"{'--' if self.key.startswith('--') else ''}{name}"

    def describe(self) -> str:
        from ..registry import TRANSFORMS

        where = self.path if isinstance(self.path, str) else "<in-memory dataset>"
        bits = [f"{self.field('path')} = {where}"]
        if self.name:
            bits.append(f"name {self.name}")
        bits.append(f"split {self.split or 'train'}")
        shown = TRANSFORMS.strip_import_path(self.transform) if self.transform else "(none: `prompt` column)"
        bits.append(f"transform {shown}")
        return ", ".join(bits)


def dataset_specs(entries: Any, section: str = "datasets") -> list[DatasetSpec]:
    """The entries of `datasets:` (or `test_datasets:`, as `section`), checked enough to load them."""
    entries = entries or []
    example = f"`{section}: [{{path: ..., type: gsm8k}}]`"
    if not isinstance(entries, list):
        raise _fail(section, entries, "must be a list of dataset entries", f"write it as {example}")
    if not entries:
        raise _fail(section, None, f"the config names no {section} entry", f"add {example}, or pass --dataset FILE")
    specs = []
    for i, entry in enumerate(entries):
        key = f"{section}[{i}]"
        if not isinstance(entry, dict) or not entry.get("path"):
            raise _fail(key, entry, "each dataset needs a `path`", f"set {key}.path")
        if isinstance(entry.get("name"), list):
            raise _fail(f"{key}.name", entry["name"], "a list of subsets is not supported here",
                        "list each subset as its own dataset entry")
        kind = entry.get("type")
        if kind is not None and not isinstance(kind, str):
            raise _fail(f"{key}.type", kind, "only named transforms are supported here",
                        "use a registered transform name or `module.function`")
        specs.append(DatasetSpec(
            path=entry["path"], split=entry.get("split"), name=entry.get("name"),
            data_files=entry.get("data_files"), revision=entry.get("revision"),
            ds_type=entry.get("ds_type"), transform=kind, key=key,
        ))
    return specs


# --- the rows ---------------------------------------------------------------------------------------

def load_rows(spec: DatasetSpec, default_split: str = "train", *, exact_split: bool = False):
    """The raw rows (a `datasets.Dataset`) of one entry, loaded as Axolotl 0.19 loads them.

    A local file is read with the builder its suffix (or `ds_type`) names, split
    `train` unless `split:` says otherwise; a directory with `data_files` the same
    way; a directory without them is a `save_to_disk` dataset, or else a folder
    `datasets.load_dataset` understands; anything else is a Hub id (with `name`,
    `split`, `data_files`, `revision`), an https:// file, or a remote filesystem.
    A `DatasetDict` gives its `split` (else `default_split`). With `exact_split`,
    a `save_to_disk` Dataset (no named splits) is refused for a split other than
    train, where Axolotl would silently read the whole of it.
    """
    import datasets

    if isinstance(spec.path, (datasets.Dataset, datasets.DatasetDict)):
        return _pick_split(spec.path, spec, default_split)
    path = str(spec.path)
    local = Path(path)
    kwargs = {"name": spec.name, "split": spec.split or None}
    try:
        if local.is_file():
            loaded = datasets.load_dataset(_builder_for(spec), data_files=path, **{**kwargs, "split": spec.split or "train"})
        elif local.is_dir() and spec.data_files:
            loaded = datasets.load_dataset(_builder_for(spec), data_files=spec.data_files, **kwargs)
        elif local.is_dir():
            try:
                loaded = datasets.load_from_disk(path)
            except FileNotFoundError:
                loaded = datasets.load_dataset(path, **kwargs)
            else:
                if exact_split and isinstance(loaded, datasets.Dataset):
                    _check_single_split(spec)
        elif path.startswith(REMOTE_PREFIXES):
            loaded = _axolotl_load(spec)
        elif path.startswith("https://"):
            loaded = datasets.load_dataset(_builder_for(spec), data_files=path, **kwargs)
        elif looks_like_missing_path(path):
            raise missing_path(spec)
        else:
            loaded = datasets.load_dataset(path, data_files=spec.data_files, revision=spec.revision, **kwargs)
    except DataSourceError:
        raise
    except Exception as exc:  # datasets raises many types; all mean "cannot load this entry"
        raise _load_failure(spec, exc) from None
    return _pick_split(loaded, spec, default_split)


def head_rows(spec: DatasetSpec, count: int, default_split: str = "train", *, exact_split: bool = False) -> dict:
    """The first `count` rows of an entry as columns: what `load_rows(...).select(range(count)).to_dict()`
    gives. A small JSON Lines file of flat rows (the usual local dataset) is read as datasets' json
    builder reads it, with pyarrow, without importing `datasets` (about 0.9 s of CPU, most of a full
    `check`); anything else, and anything pyarrow refuses, goes through `load_rows`, so its rows
    and its errors are what they always were (tests/test_data_sources.py holds both ways equal)."""
    columns = _flat_json_lines_head(spec, count)
    if columns is not None:
        return columns
    loaded = load_rows(spec, default_split, exact_split=exact_split)
    return loaded.select(range(min(count, len(loaded)))).to_dict()


JSON_CHUNK = 10 << 20  # datasets' json builder reads a file in chunks this size (JsonConfig.chunksize)


def _is_flat(value: Any) -> bool:
    scalar = (str, int, float, bool, type(None))
    return isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def _flat_json_lines_head(spec: DatasetSpec, count: int) -> dict | None:
    """datasets' json builder on a file of one chunk: pyarrow's `read_json` with the builder's block
    size. Only where nothing else of the builder applies (no list-of-objects file, no nested objects
    it would re-encode as JSON strings, no split or subset to pick, rows present); None elsewhere."""
    path = spec.path
    if not isinstance(path, (str, Path)) or spec.name or spec.data_files or (spec.split or "train") != "train":
        return None
    if _builder_for(spec) != "json":
        return None
    local = Path(str(path))
    try:
        if not local.is_file() or local.stat().st_size > JSON_CHUNK:
            return None
        data = local.read_bytes()
    except OSError:
        return None
    if not data.strip() or data.lstrip().startswith(b"["):
        return None
    import json

    try:
        rows = [json.loads(line) for line in data.splitlines() if line.strip()]
    except ValueError:
        return None
    if not all(isinstance(row, dict) and all(_is_flat(v) for v in row.values()) for row in rows):
        return None
    import io

    import pyarrow as pa
    import pyarrow.json as paj

    block = max(JSON_CHUNK // 32, 16 << 10)
    block = len(data) if len(data) // 8 > block else block  # as the builder does
    try:
        table = paj.read_json(io.BytesIO(data), read_options=paj.ReadOptions(block_size=block))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_rows == 0:
        return None
    return table.slice(0, count).to_pydict()


def missing_path(spec: DatasetSpec, config_path: Any = None) -> DataSourceError:
    """`path` not found, with the path as resolved (and the copy beside the config, if one is there)."""
    resolved = user_path(str(spec.path)).absolute()
    fix = "correct the path"
    if config_path and not Path(str(spec.path)).is_absolute():
        beside = Path(str(config_path)).resolve().parent / str(spec.path)
        if beside.exists():
            fix = (f"{beside} is beside the config, but `axolotl train` reads relative paths from the working "
                   f"folder: write `path: {beside}`, or run from {beside.parent}")
    return _fail(spec.field("path"), str(spec.path),
                 f"file not found at {resolved} (relative paths start at the working folder, {Path.cwd()})", fix)


# A Hub id is `owner/name` (`openai/gsm8k`, `Qwen/Qwen2.5-1.5B-Instruct`).
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
BARE_NAME = re.compile(r"[A-Za-z0-9][\w.-]*")


def is_local(source: Any, *, bare_name_is_hub: bool = False) -> bool:
    """Whether a dataset `path` (or a model) means a file or folder on this machine rather than a
    Hub id: it exists, or has a data-file extension, or does not look like `owner/name`.
    `bare_name_is_hub`: a single name is a Hub id too (models: `gpt2`). URLs are neither.
    The one rule for local vs Hub: the checks, stats, evaluate and the dry run all ask it."""
    text = str(source)
    if text.startswith((*REMOTE_PREFIXES, "https://", "http://")):
        return False
    if user_path(text).exists() or any(s.lower() in DATA_SUFFIXES for s in Path(text).suffixes):
        return True
    if HUB_ID.fullmatch(text) or (bare_name_is_hub and BARE_NAME.fullmatch(text)):
        return False
    return True


def looks_like_missing_path(source: Any, *, bare_name_is_hub: bool = False) -> bool:
    """A local path (`is_local`) that is not there: an error, never a question to the Hub."""
    return is_local(source, bare_name_is_hub=bare_name_is_hub) and not user_path(str(source)).exists()


def _builder_for(spec: DatasetSpec) -> str:
    if spec.ds_type:
        return spec.ds_type
    return next((b for ext, b in EXTENSIONS_TO_DATASET_TYPES.items() if ext in str(spec.path)), "json")


def _check_single_split(spec: DatasetSpec) -> None:
    if spec.split and spec.split.split("[")[0] != "train":
        raise _fail(spec.field("split"), spec.split,
                    "the path is a `save_to_disk` Dataset, which has no named splits",
                    "save a DatasetDict with that split, or name a held-out dataset (test_datasets: or --dataset)")


def _axolotl_load(spec: DatasetSpec):
    """Remote filesystems need Axolotl's fsspec plumbing (s3fs, gcsfs, adlfs, ocifs)."""
    from axolotl.utils.data.shared import load_dataset_with_config
    from axolotl.utils.dict import DictDefault

    entry = {k: v for k, v in vars(spec).items() if k not in ("key", "transform")}
    return load_dataset_with_config(DictDefault(entry), False, streaming=False)


def _load_failure(spec: DatasetSpec, exc: Exception) -> DataSourceError:
    import os

    path = str(spec.path)
    # datasets wraps what its builder raised ("An error occurred while generating the dataset")
    cause = exc.__cause__ if type(exc).__name__ == "DatasetGenerationError" and exc.__cause__ else exc
    why = first_line(cause)
    if spec.split and "split" in why.lower():
        return _fail(spec.field("split"), spec.split, f"the dataset has no such split ({why})",
                     "pick one of its splits with " + ("--split" if spec.is_override else "`split:` or --split"))
    if Path(path).is_file() and _builder_for(spec) == "json" and (found := _json_lines_problem(Path(path))):
        return _fail(spec.field("path"), path, found,
                     'write one JSON object per line (JSON Lines), e.g. {"question": "...", "answer": "..."}')
    if Path(path).exists():
        what = f"as {_builder_for(spec)}" if Path(path).is_file() or spec.data_files else "as a dataset"
        kind = "its suffix picks the reader" if spec.is_override else f"or set {spec.field('ds_type')}"
        return _fail(spec.field("path"), path, f"cannot read it {what} ({why})",
                     f"make it a valid json/jsonl/parquet/csv file or a `save_to_disk` directory ({kind})")
    offline = any(os.environ.get(v, "").lower() in ("1", "true", "yes")
                  for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    where = "the Hub is switched off (HF_HUB_OFFLINE)" if offline else "nor loadable from the Hub"
    return _fail(spec.field("path"), path, f"not a local file, {where} ({why})",
                 "pass --dataset LOCAL_FILE (json, jsonl, parquet) to read a local copy instead, "
                 "keeping the rest of the config")


JSON_LINES_LOOKED_AT = 100_000  # lines read to say why a json file failed (the error is already there)


def _json_lines_problem(path: Path) -> str | None:
    """Why the `datasets` json builder refused a file, in the user's terms: it is empty, or its
    first line that is not a JSON object (a JSON array, a number, not JSON at all); None when
    neither (a whole-file JSON array of objects is the builder's other format)."""
    import itertools
    import json

    try:
        with path.open("rb") as handle:
            head = handle.read(1 << 16)
            if not head:
                return "the file is empty"
            if not head.strip():
                return None if handle.read(1) else "the file has only blank lines, no rows"
            handle.seek(0)
            for number, line in enumerate(itertools.islice(handle, JSON_LINES_LOOKED_AT), start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except ValueError as exc:
                    if number == 1 and line.lstrip().lstrip(b"\xef\xbb\xbf").startswith((b"[", b"{")):
                        return None  # one JSON document over several lines: the builder's own message
                    return f"line {number} is not JSON ({exc.msg})"
                if isinstance(row, list):
                    return f"line {number} is a JSON array, not an object (one JSON object per line)"
                if not isinstance(row, dict):
                    return (f"line {number} is a JSON {type(row).__name__}, not an object "
                            "(one JSON object per line)")
    except OSError:
        return None
    return None


def _pick_split(loaded, spec: DatasetSpec, default_split: str):
    import datasets

    if isinstance(loaded, datasets.DatasetDict):
        split = spec.split or default_split
        if split not in loaded:
            raise _fail(spec.field("split"), split, f"the dataset has splits {sorted(loaded)}",
                        "pick one of those with `split:` or --split")
        loaded = loaded[split]
    if len(loaded) == 0:
        raise _fail(spec.field("path"), str(spec.path) if isinstance(spec.path, (str, Path)) else "<in-memory>",
                    f"the dataset has no rows (split {spec.split or default_split})",
                    "point it at a non-empty dataset or split")
    return loaded


def first_line(exc: BaseException) -> str:
    """An exception's first line, for one-line error messages."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
