"""Write and print evaluation results: JSON summary, jsonl samples, comparison table.

Files are written to a temporary name and renamed, so an interrupted run never
leaves a half-written summary that looks complete.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from ..system.safe_files import write_atomic
from . import passk
from .core import EvalResult


def default_out_dir(model: str) -> Path:
    """Next to a local model; ./eval-outputs/<name> for a Hub id."""
    if Path(model).is_dir():
        return Path(model)
    return Path("eval-outputs") / re.sub(r"[^A-Za-z0-9._-]+", "_", str(model)).strip("_")


def write_results(result: EvalResult, out_dir: str | Path, stem: str | None = None,
                  extra: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """`<stem>.json` (summary) and `<stem>-samples.jsonl` in `out_dir`; returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"eval-{result.split}"
    summary = {**result.summary(), **(extra or {})}
    summary_path = out / f"{stem}.json"
    samples_path = out / f"{stem}-samples.jsonl"
    write_atomic(samples_path, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n"
                                       for r in result.records))
    write_atomic(summary_path, json.dumps(summary, indent=2, default=_json_default) + "\n")
    return summary_path, samples_path


def _json_default(value: Any):
    return str(value)


def headline_metrics(result: EvalResult) -> dict[str, float]:
    """The numbers the report shows, in order."""
    out = {"accuracy": result.accuracy, **result.pass_at_k, "format_compliance": result.format_compliance,
           **({} if math.isnan(result.any_layout_accuracy) else {"any_layout_accuracy": result.any_layout_accuracy}),
           "mean_length": result.mean_length,
           "reward": result.reward_mean}
    out.update({f"rewards/{k}": v for k, v in result.reward_means.items()})
    out.update({f"tools/{k}": v for k, v in result.tools.items()})
    return out


def format_result(result: EvalResult) -> str:
    lines = [
        f"model: {result.model}",
        f"split: {result.split}   problems: {result.n_problems}   samples: {result.samples} "
        f"(temperature {result.temperature:g})   max_new_tokens: {result.max_new_tokens}   "
        f"backend: {result.backend}   seed: {result.seed}",
        f"correct = {result.correct_reward} > 0",
    ]
    width = max(len(k) for k in headline_metrics(result))
    for name, value in headline_metrics(result).items():
        lines.append(f"  {name:<{width}}  {_fmt(value)}")
    return "\n".join(lines)


def compare(result: EvalResult, baseline: EvalResult, *, n_boot: int = 2000, seed: int = 0,
            level: float = 0.95) -> dict[str, dict[str, float]]:
    """Per metric: model, baseline, difference and its paired bootstrap interval over problems."""
    if result.n_problems != baseline.n_problems:
        raise ValueError(f"cannot compare: {result.n_problems} vs {baseline.n_problems} problems")
    out = {}
    for name in result.per_problem:
        if name not in baseline.per_problem:
            continue
        a, b = result.per_problem[name], baseline.per_problem[name]
        diff, low, high = passk.paired_bootstrap(a, b, n_boot=n_boot, seed=seed, level=level)
        out[name] = {"model": _nanmean(a), "baseline": _nanmean(b), "diff": diff,
                     "ci_low": low, "ci_high": high}
    return out


def format_comparison(table: dict[str, dict[str, float]], level: float = 0.95) -> str:
    header = f"  {'metric':<18} {'model':>9} {'baseline':>9} {'diff':>9}   {int(level * 100)}% CI"
    lines = [header]
    for name, row in table.items():
        lines.append(f"  {name:<18} {_fmt(row['model']):>9} {_fmt(row['baseline']):>9} "
                     f"{row['diff']:>+9.4f}   [{row['ci_low']:+.4f}, {row['ci_high']:+.4f}]")
    return "\n".join(lines)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def _fmt(value: float) -> str:
    return f"{value:.4f}" if isinstance(value, float) and abs(value) < 1000 else f"{value:.1f}"
