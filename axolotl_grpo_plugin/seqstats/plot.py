"""Histogram of prompt lengths with the percentiles and the config's prompt room marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..system.safe_files import replacing
from .report import BudgetReport


def write_histogram(report: BudgetReport, path: str | Path) -> Path:
    """Write a PNG; written to a temporary file first so a failed write leaves no half image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report.length_counts
    lengths = np.arange(len(counts))
    low, high = int(report.prompt_tokens["min"]), int(report.prompt_tokens["max"])
    step = max(1, -(-(high - low + 1) // 100))  # at most ~100 bars of whole-token width
    edges = np.arange(low, high + step + 1, step) - 0.5
    fig, ax = plt.subplots(figsize=(9, 4.5))
    ax.hist(lengths, bins=edges, weights=counts, color="#4c72b0")
    marks = [("p50", "#55a868"), ("p95", "#dd8452"), ("p99", "#c44e52"), ("max", "#222222")]
    for name, color in marks:
        value = report.prompt_tokens[name]
        ax.axvline(value, color=color, linestyle="--", linewidth=1.2, label=f"{name} = {int(value)}")
    verdict = report.verdict
    if verdict.max_model_len is not None:
        room = verdict.max_model_len - verdict.max_completion_length
        ax.axvline(room, color="#8172b2", linewidth=2,
                   label=f"max_model_len - max_completion_length = {room}")
    ax.set_xlabel("prompt tokens (chat template applied, as the trainer tokenizes)")
    ax.set_ylabel("prompts")
    ax.set_title(f"{report.rows:,} prompts; recommended vllm.max_model_len: {report.recommended_max_model_len}")
    ax.legend(loc="best", fontsize=8, framealpha=0.9)
    fig.tight_layout()
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(target, "wb") as handle:
            fig.savefig(handle, dpi=110, format="png")
    finally:
        plt.close(fig)
    return target
