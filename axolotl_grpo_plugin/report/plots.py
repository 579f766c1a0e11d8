"""Per-step curves as inline PNG images (matplotlib, Agg backend: no display, no network)."""

from __future__ import annotations

import base64
import io
import math


def _moving_average(ys: list[float], window: int) -> list[float]:
    out = []
    for i in range(len(ys)):
        chunk = [y for y in ys[max(0, i - window + 1): i + 1] if not math.isnan(y)]
        out.append(sum(chunk) / len(chunk) if chunk else math.nan)
    return out


def plot_png(title: str, xs: list[int], ys: list[float],
             marks: list[tuple[int, str]] | None = None) -> str:
    """One small line chart as a base64 PNG; a moving average is drawn over long, noisy runs;
    `marks` (step, label): the run doctor's findings, drawn as red lines where they fired."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(4.2, 2.6), dpi=90)
    ax = fig.add_subplot()
    if len(xs) > 30:
        ax.plot(xs, ys, color="#9ab7d3", linewidth=0.8, label="per step")
        ax.plot(xs, _moving_average(ys, max(5, len(xs) // 30)), color="#1f5f99", linewidth=1.6,
                label="moving average")
        ax.legend(fontsize=7, frameon=False)
    else:
        ax.plot(xs, ys, color="#1f5f99", linewidth=1.6, marker="o" if len(xs) < 15 else None,
                markersize=3)
    for step, label in marks or []:
        ax.axvline(step, color="#c0392b", linewidth=1.2, linestyle="--")
        ax.annotate(label, (step, 1), xycoords=("data", "axes fraction"), rotation=90, fontsize=6,
                    color="#c0392b", ha="right", va="top")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def stacked_png(title: str, xs: list[int], parts: dict[str, list[float]], ylabel: str = "seconds") -> str:
    """One stacked bar per step (the step's parts, bottom to top in `parts` order) as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(6.4, 2.8), dpi=90)
    ax = fig.add_subplot()
    bottom = [0.0] * len(xs)
    for name, ys in parts.items():
        ax.bar(xs, ys, bottom=bottom, width=0.85, label=name, linewidth=0)
        bottom = [b + y for b, y in zip(bottom, ys)]
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, frameon=False, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
