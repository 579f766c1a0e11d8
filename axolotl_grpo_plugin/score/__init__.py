"""Score rows of `{prompt, completion, answer, ...}` with a config's rewards: try a new reward
(an LLM judge, an HTTP verifier, a changed rubric) on an old run before paying for a new one.

    axolotl-grpo score CONFIG --input FILE.jsonl [--output FILE.jsonl]

The rewards are the config's `trl.reward_funcs`, resolved exactly as `axolotl train` resolves
them (registered names, import paths, `grpo_plugin.remote_rewards`), each behind the same
safety layer, called as TRL calls them (every other field of a row is a dataset column). A
run's OUTPUT_DIR/rollouts.jsonl works as is (its bookkeeping fields, `step`, `advantage`, ..., are
kept in the output but not passed to the rewards). Each output row is the input row plus `rewards`
(name as listed in the config -> value, null where the reward returned None) and `reward` (the
weighted sum with `trl.reward_weights`, as the rollout log has it); then a summary per reward:
mean, None count, seconds (and for remote rewards: calls, cache hits, failures, tokens).

The output (default: FILE.scored.jsonl; a missing folder is made) is written to a temporary file
and only replaces an existing one when every row is scored: an interrupted or failed run leaves it
as it was. An input with no row to score is an input error (exit 2) and writes nothing.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from ..config.load import read_config
from ..config.run import read_run
from ..errors import PluginError, Problem, counted
from ..names import resolve_names
from ..remote.checks import check as check_remote
from ..rollouts.log import read_records, weighted_reward
from ..sampling.scoring import Reward, load_rewards, score
from ..system.safe_files import overwritten_input, replacing, unwritable


OUTPUT_KEYS = ("rewards", "reward")  # written by this tool: never passed to a reward as a column
# What the rollout log adds to each completion (observe/trainer_hook.py): kept in the output row,
# not passed to the rewards, which saw only the dataset's columns in training.
ROLLOUT_FIELDS = ("step", "mode", "group", "advantage", "length", "reflection", "dropped")


def is_column(key: str) -> bool:
    return key not in ("prompt", "completion", *OUTPUT_KEYS, *ROLLOUT_FIELDS) and not key.startswith("remote/")


class ScoreInputError(PluginError):
    """The input file or the rewards cannot be scored."""


def prepare(config: str | Path) -> list[tuple[str, Reward]]:
    """(name as listed, reward) for each `trl.reward_funcs` entry, as training loads them."""
    from ..errors import GRPOConfigError

    raw, _ = read_config(config)  # the yaml and its Run, read once
    run = read_run(raw)
    names = [str(f) for f in run.trl.reward_funcs]  # as listed, before names are resolved
    run, unresolved = resolve_names(raw, run)  # (and declares remote rewards)
    problems = unresolved or check_remote(run)
    if problems:
        raise GRPOConfigError(problems)
    return list(zip(names, load_rewards(run), strict=True))


def batches(path: Path, size: int, counts: dict) -> Any:
    batch: list[dict] = []
    for row in read_records(path, counts, unterminated=True):  # a finished file: a whole last line counts
        if "completion" not in row:
            counts["no_completion"] = counts.get("no_completion", 0) + 1
            continue
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def score_batch(rows: list[dict], rewards: list[tuple[str, Reward]], seconds: dict) -> list[dict]:
    from axolotl_grpo_rewards.text import completion_text

    prompts = [row.get("prompt") for row in rows]
    texts = [completion_text(row.get("completion")) for row in rows]
    keys = list(dict.fromkeys(k for row in rows for k in row if is_column(k)))
    columns = [{k: row.get(k) for k in keys} for row in rows]
    values: dict[str, list[float]] = {}
    for name, reward in rewards:
        start = time.monotonic()
        values[name] = score([reward], prompts, texts, [[] for _ in rows], columns)[reward.name]
        seconds[name] = seconds.get(name, 0.0) + time.monotonic() - start
    weights = [reward.weight for _, reward in rewards]
    out = []
    for i, row in enumerate(rows):
        per = {name: (None if math.isnan(v[i]) else v[i]) for name, v in values.items()}
        out.append({**row, "rewards": per, "reward": weighted_reward(list(per.values()), weights)})
    return out


def summary(scored: dict[str, list[float | None]], seconds: dict, rewards: list[tuple[str, Reward]]) -> list[str]:
    lines = [f"{'reward':<24} {'mean':>8} {'None':>6} {'seconds':>8}"]
    for name, reward in rewards:
        values = [v for v in scored[name] if v is not None]
        mean = f"{sum(values) / len(values):.4f}" if values else "-"
        lines.append(f"{name:<24} {mean:>8} {len(scored[name]) - len(values):>6} {seconds.get(name, 0.0):>8.2f}")
        totals = getattr(getattr(reward.func, "__wrapped__", None), "totals", None)
        if totals:
            lines.append(f"  remote: {totals['calls']} calls, {totals['cache_hits']} cache hits, "
                         f"{totals['failures']} failed, {totals['unscored']} unscored, {totals['tokens']} tokens")
    return lines


def run(config: str, input_path: Path, output: Path, batch_size: int) -> list[str]:
    if not input_path.is_file():
        raise ScoreInputError([Problem("--input", str(input_path), "is not a file.",
                                       "give a jsonl file of {prompt, completion, answer, ...} rows, "
                                       "e.g. OUTPUT_DIR/rollouts.jsonl of a run")])
    if overwritten_input(output, [(input_path, "the input file")]):
        raise ScoreInputError([Problem("--output", str(output), "is the input file.",
                                       "write the scored rows to another file")])
    check_output(output)
    rewards = prepare(config)
    counts: dict = {}
    scored: dict[str, list] = {name: [] for name, _ in rewards}
    seconds: dict[str, float] = {}
    from tqdm import tqdm

    rows_done = 0
    with replacing(output) as handle, tqdm(desc="scoring", unit="row", file=sys.stderr,
                                           disable=not sys.stderr.isatty()) as bar:
        import json

        for rows in batches(input_path, batch_size, counts):
            for row in score_batch(rows, rewards, seconds):
                handle.write(json.dumps(row, ensure_ascii=False, allow_nan=False) + "\n")
                for name in scored:
                    scored[name].append(row["rewards"][name])
            rows_done += len(rows)
            bar.update(len(rows))
        if not rows_done:  # raised inside `replacing`: an existing output stays as it was
            raise nothing_scored(input_path, output, counts)
    lines = [f"scored {counted(rows_done, 'row')} of {input_path} -> {output}"]
    if counts.get("skipped"):
        lines.append(f"skipped {skipped_lines(counts)}")
    if counts.get("no_completion"):
        lines.append(f"skipped {counted(counts['no_completion'], 'row')} without a `completion` field "
                     "(the rollout log's own records, e.g. run start and end, have none)")
    return lines + summary(scored, seconds, rewards)


def check_output(output: Path) -> None:
    """Before the rewards load: --output names a file in a folder that can be written. A missing
    folder is made, as the other tools' output flags make theirs."""
    if output.is_dir():
        raise ScoreInputError([Problem("--output", str(output), "is a folder.",
                                       f"name a file in it, e.g. {output / 'scored.jsonl'}")])
    why = unwritable(output)
    if why is None:
        return
    raise ScoreInputError([Problem("--output", str(output), f"{why}.", "choose a path in a folder you can write")])


def not_json(lines: int) -> str:
    return f"{counted(lines, 'line')} that {'is' if lines == 1 else 'are'} not a JSON object"


def skipped_lines(counts: dict) -> str:
    """"2 lines that are not a JSON object (lines 3, 9)": which ones (the first few), and whether
    the last is torn (an unfinished write), said only of that line."""
    skipped = counts["skipped"]
    numbers = [number for _, number in counts.get("skipped_at", [])]
    shown = ", ".join(map(str, numbers)) + (", ..." if skipped > len(numbers) else "")
    torn = counts.get("torn_at")
    if torn and skipped == 1:
        where = f"line {torn[1]}, a torn last line"
    else:
        where = f"line{'s' * (skipped != 1)} {shown}" + (f"; the last, line {torn[1]}, is torn" if torn else "")
    return f"{not_json(skipped)} ({where})"


def nothing_scored(input_path: Path, output: Path, counts: dict) -> ScoreInputError:
    """No row of the input had a completion: an input error, not an empty result."""
    found = []
    if counts.get("skipped"):
        found.append(skipped_lines(counts))
    if counts.get("no_completion"):
        rows = counts["no_completion"]
        found.append(f"{counted(rows, 'row')} without a `completion` field")
    return ScoreInputError([Problem(
        "--input", str(input_path), f"nothing to score: {', '.join(found) or 'the file is empty'}; "
        f"{output} was not written.",
        "give jsonl rows with a `completion` (and `prompt`, `answer`, any columns the rewards read), one "
        "JSON object a line, e.g. OUTPUT_DIR/rollouts.jsonl of a run")])
