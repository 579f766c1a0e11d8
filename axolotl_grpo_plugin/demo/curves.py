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

from ..system.safe_files import replacing


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


def reward_maxima() -> dict[str, float]:
    """The most each GSM8K reward pays for one completion (the curves' ceilings)."""
    from ..registry import BUILTIN_REWARDS

    return {name: r.maximum for name, r in BUILTIN_REWARDS.items() if r.maximum is not None}


def plot(history: list[dict], path: str | Path, title: str = "GRPO reward curves",
         temperature: float | None = None) -> Path:
    """The :func:`figure`, written atomically to ``path`` as a PNG."""
    import matplotlib.pyplot as plt

    fig = figure(history, title, temperature)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with replacing(path, "wb") as handle:
            fig.savefig(handle, format="png")
    finally:
        plt.close(fig)
    return path


def figure(history: list[dict], title: str = "GRPO reward curves", temperature: float | None = None):
    """Total (top) and per-function (bottom) mean rewards per step, smoothed, each reward's
    maximum dashed, the legends outside the axes.

    These are the training rollouts: sampled at ``temperature``, so they start above the
    greedy held-out "before" of the demo's table and are not comparable with it; the
    figure says so.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = list(range(1, len(history) + 1))
    per_func = {}
    for key in history[0] if history else []:
        match = PER_FUNC.match(key)
        if match:
            per_func[match.group("name").removesuffix("_reward_func")] = [entry.get(key, 0.0) for entry in history]
    maxima = reward_maxima()
    total_max = sum(maxima[name] for name in per_func) if set(per_func) <= set(maxima) and per_func else None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), dpi=110, sharex=True,
                                      gridspec_kw={"height_ratios": [1, 1.4]})
    sampled = f"sampled at temperature {temperature:g}" if temperature is not None else "sampled"
    fig.suptitle(title, fontsize=12)
    fig.text(0.5, 0.925, f"training rollouts ({sampled}): mean reward per step, 5-step moving average; "
             "dashed: each reward's maximum\nthe demo's before/after table scores greedy answers on "
             "held-out problems, so its numbers are not these", ha="center", va="top", fontsize=8.5)
    _curve(top, steps, "total", [entry[TOTAL_KEY] for entry in history], "black", 2.2)
    _ceilings(top, {"total": total_max} if total_max is not None else {}, {"total": "black"})
    top.set_ylabel("total reward")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colour_of = {name: colours[i % len(colours)] for i, name in enumerate(per_func)}
    for name, values in per_func.items():
        _curve(bottom, steps, name, values, colour_of[name], 1.4)
    _ceilings(bottom, {name: maxima[name] for name in per_func if name in maxima}, colour_of)
    bottom.set_ylabel("reward per function")
    bottom.set_xlabel("training step")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.89))
    return fig


def _curve(ax, steps: list[int], name: str, values: list[float], colour: str, width: float) -> None:
    ax.plot(steps, _smooth(values), label=name, color=colour, linewidth=width)


def _ceilings(ax, ceilings: dict[str, float], colour_of: dict[str, str]) -> None:
    """A dashed line at each maximum, labelled at its right end; rewards sharing a
    maximum (to 2 decimals) share the line and the label."""
    by_value: dict[float, list[str]] = {}
    for name, value in ceilings.items():
        by_value.setdefault(round(value, 2), []).append(name)
    for value, names in by_value.items():
        colour = colour_of[names[0]] if len(names) == 1 else "grey"
        ax.axhline(value, color=colour, linestyle="--", linewidth=0.9, alpha=0.8)
        ax.annotate(f"max {value:g}: {', '.join(names)}", xy=(1.0, value), xycoords=("axes fraction", "data"),
                    xytext=(-4, 2), textcoords="offset points", ha="right", va="bottom", fontsize=7.5,
                    color=colour)
    if ceilings:  # headroom so the top label stays inside the axes
        low, high = ax.get_ylim()
        ax.set_ylim(low, max(high, max(ceilings.values()) * 1.08))


def _smooth(values: list[float], window: int = 5) -> list[float]:
    out = []
    for i in range(len(values)):
        chunk = values[max(0, i - window + 1): i + 1]
        out.append(sum(chunk) / len(chunk))
    return out
