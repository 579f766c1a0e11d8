"""The reward curves of a GRPO run: read the trainer's per-step log, plot it as a PNG.

The source of truth is ``trainer_state.json`` (its ``log_history``), which the
demo config makes the trainer save once at the end; the ``{'loss': ...}`` lines
the Trainer prints are the fallback when no state file was written.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from ..safe_files import replacing


TOTAL_KEY = "reward"
PER_FUNC = re.compile(r"^rewards/(?P<name>.+)/mean$")
LOG_LINE = re.compile(r"\{'loss'[^{}]*\}")


def log_history(output_dir: str | Path) -> list[dict]:
    """Per-step entries (with a ``reward`` key) from the newest ``trainer_state.json``."""
    states = sorted(Path(output_dir).glob("**/trainer_state.json"), key=lambda p: p.stat().st_mtime)
    if not states:
        return []
    history = json.loads(states[-1].read_text()).get("log_history", [])
    return [entry for entry in history if TOTAL_KEY in entry]


def parse_log_lines(text: str) -> list[dict]:
    """Per-step dicts from the Trainer's printed ``{'loss': '0.1', ...}`` lines (never eval'd)."""
    steps = []
    for match in LOG_LINE.findall(text):
        try:
            raw = ast.literal_eval(match)
            steps.append({key: float(value) for key, value in raw.items()})
        except (ValueError, SyntaxError, TypeError):
            continue
    return [step for step in steps if TOTAL_KEY in step]


def third_means(values: list[float]) -> tuple[float, float]:
    """Mean of the first and of the last third: a noise-tolerant "did it go up"."""
    third = max(1, len(values) // 3)
    return sum(values[:third]) / third, sum(values[-third:]) / third


def plot(history: list[dict], path: str | Path, title: str = "GRPO reward curves") -> Path:
    """Total and per-function mean rewards per step, smoothed, written atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    steps = list(range(1, len(history) + 1))
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    series = {"total": [entry[TOTAL_KEY] for entry in history]}
    for key in history[0] if history else []:
        match = PER_FUNC.match(key)
        if match:
            series[match.group("name").removesuffix("_reward_func")] = [entry.get(key, 0.0) for entry in history]
    for name, values in series.items():
        ax.plot(steps, _smooth(values), label=name, linewidth=2.2 if name == "total" else 1.2)
    ax.set_xlabel("step")
    ax.set_ylabel("mean reward (moving average of 5 steps)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, "wb") as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
    return path


def _smooth(values: list[float], window: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out
