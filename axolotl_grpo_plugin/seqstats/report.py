"""The sequence budget: prompt-length percentiles, the recommended vLLM `max_model_len`, and
the verdict on a config's values. Lengths are a histogram, so percentiles are exact and a
report over a million prompts stays a few kilobytes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import counted


PERCENTILES = (50, 95, 99)
ROUND_TO = 8  # vLLM block sizes and GPU kernels like multiples of 8


@dataclass(frozen=True)
class LongPrompt:
    """One of the longest prompts: where it is, how long, what it starts with."""

    dataset: int
    row: int
    tokens: int
    preview: str


@dataclass(frozen=True)
class Verdict:
    """What vLLM would do with every prompt under the config's `vllm.max_model_len`.

    `rejected`: prompts at least `max_model_len` long; vLLM refuses them ("longer
    than the maximum model length") and the training step fails.
    `truncated`: prompts that fit, but leave fewer than `max_completion_length`
    tokens, so vLLM stops their completions early.
    """

    max_model_len: int | None
    max_completion_length: int
    rejected: int
    truncated: int
    ok: bool
    line: str


@dataclass
class BudgetReport:
    """Prompt-length statistics of a dataset as the trainer tokenizes it."""

    rows: int
    prompt_tokens: dict[str, float]
    max_completion_length: int
    recommended_max_model_len: int
    longest: list[LongPrompt]
    verdict: Verdict
    source: dict[str, Any] = field(default_factory=dict)
    length_counts: np.ndarray | None = field(default=None, repr=False)
    counting: dict[str, Any] = field(default_factory=dict)  # how the rows were counted (method, backend)

    def percentile(self, q: float) -> int:
        return percentile_from_counts(self.length_counts, q)

    def to_json(self) -> dict[str, Any]:
        """The machine-readable report (what `stats.py --json` prints)."""
        return {
            "rows": self.rows,
            "prompt_tokens": dict(self.prompt_tokens),
            "max_completion_length": self.max_completion_length,
            "recommended_max_model_len": self.recommended_max_model_len,
            "max_model_len": self.verdict.max_model_len,
            "rejected": self.verdict.rejected,
            "truncated": self.verdict.truncated,
            "ok": self.verdict.ok,
            "verdict": self.verdict.line,
            "longest": [asdict(p) for p in self.longest],
            "source": dict(self.source),
            "counting": dict(self.counting),
        }


def percentile_from_counts(counts: np.ndarray, q: float) -> int:
    """Nearest-rank percentile: the smallest length that at least q% of prompts fit in."""
    total = int(counts.sum())
    rank = max(1, math.ceil(q / 100 * total))
    return int(np.searchsorted(np.cumsum(counts), rank))


def summarize(counts: np.ndarray) -> dict[str, float]:
    """min / mean / p50 / p95 / p99 / max of the lengths a histogram describes."""
    lengths = np.nonzero(counts)[0]
    mean = float((np.arange(len(counts)) * counts).sum() / int(counts.sum()))
    return {"min": int(lengths[0]), "mean": round(mean, 2),
            **{f"p{q}": percentile_from_counts(counts, q) for q in PERCENTILES}, "max": int(lengths[-1])}


def judge(counts: np.ndarray, max_model_len: int | None, max_completion_length: int,
          recommended: int, uses_vllm: bool | None = None) -> Verdict:
    """Count rejected and truncated prompts under `max_model_len` and say what to do."""
    if max_model_len is None:
        return Verdict(None, max_completion_length, 0, 0, True, (
            f"OK: trl.use_vllm is off, so no vLLM length limit applies. For a vLLM run, set `vllm.max_model_len: "
            f"{recommended}`." if uses_vllm is False else "vllm.max_model_len is not set: vLLM reserves the model's "
            f"full context. Set `vllm.max_model_len: {recommended}` to spend that memory on KV cache."))
    lengths = np.arange(len(counts))
    rejected = int(counts[lengths >= max_model_len].sum())
    room = (lengths < max_model_len) & (lengths + max_completion_length > max_model_len)
    truncated = int(counts[room].sum())
    if rejected or truncated:
        line = (f"NOT OK: vllm.max_model_len = {max_model_len} rejects {counted(rejected, 'prompt')} and "
                f"cuts {counted(truncated, 'completion')} short of trl.max_completion_length = "
                f"{max_completion_length}. Fix: set `vllm.max_model_len: {recommended}`.")
        return Verdict(max_model_len, max_completion_length, rejected, truncated, False, line)
    line = f"OK: vllm.max_model_len = {max_model_len} fits every prompt plus {max_completion_length} completion tokens."
    if max_model_len - recommended >= 64:
        line += f" {recommended} would also fit and leave more memory for the KV cache."
    return Verdict(max_model_len, max_completion_length, 0, 0, True, line)


def build_report(counts: np.ndarray, longest: list[LongPrompt], max_completion_length: int,
                 max_model_len: int | None, source: dict[str, Any],
                 uses_vllm: bool | None = None) -> BudgetReport:
    summary = summarize(counts)
    recommended = -(-(int(summary["max"]) + max_completion_length) // ROUND_TO) * ROUND_TO
    return BudgetReport(
        rows=int(counts.sum()),
        prompt_tokens=summary,
        max_completion_length=max_completion_length,
        recommended_max_model_len=recommended,
        longest=longest,
        verdict=judge(counts, max_model_len, max_completion_length, recommended, uses_vllm),
        source=source,
        length_counts=counts,
    )


def render_text(report: BudgetReport) -> str:
    """The human report."""
    t = report.prompt_tokens
    src = report.source
    lines = [
        f"tokenizer:      {src.get('tokenizer')}  (chat template: {src.get('chat_template')})",
    ]
    for ds in src.get("datasets", []):
        lines.append(f"dataset:        {ds}")
    lines += [
        f"rows:           {report.rows:,}",
        "prompt tokens:  " + "  ".join(
            f"{k} {v:,.2f}" if k == "mean" else f"{k} {int(v):,}" for k, v in t.items()),
        "longest prompts:",
    ]
    for p in report.longest:
        where = f"row {p.row}" if len(src.get("datasets", [])) <= 1 else f"datasets[{p.dataset}] row {p.row}"
        lines.append(f"  {p.tokens:>6,} tokens  {where}: {p.preview}")
    lines += [
        f"max completion: {report.max_completion_length:,} tokens (trl.max_completion_length)",
        f"recommended:    vllm.max_model_len: {report.recommended_max_model_len}"
        f"  (max prompt {int(t['max'])} + {report.max_completion_length}, rounded up to a multiple of {ROUND_TO})",
        report.verdict.line,
    ]
    return "\n".join(lines)
