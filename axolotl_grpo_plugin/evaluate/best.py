"""Keep-best bookkeeping (`grpo_plugin.keep_best`): which evaluation step scored best on one
task metric, and by how much it beat the last one. Pure logic, so a fake metric stream tests it."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ..errors import Problem


FIXED = ("accuracy", "format_compliance", "mean_length", "reward")
_PATTERN = re.compile(r"^eval/(?:pass@(\d+)|rewards/[^/]+/mean|(\w+))$")


def metric_problems(metric: str, samples: int) -> list[Problem]:
    """Why `keep_best.metric` is not a metric `eval_every` logs; [] when it is."""
    from .passk import report_ks

    match = _PATTERN.match(metric)
    fix = ("use eval/accuracy, eval/format_compliance, eval/mean_length, eval/reward, "
           "eval/rewards/NAME/mean or eval/pass@K")
    if not match or (match.group(2) and match.group(2) not in FIXED):
        return [Problem("grpo_plugin.keep_best.metric", metric, "not a metric eval_every logs.", fix)]
    if match.group(1):
        ks = report_ks(samples)
        if int(match.group(1)) not in ks:
            logged = ", ".join(f"pass@{k}" for k in ks) or "none (samples: 0)"
            return [Problem("grpo_plugin.keep_best.metric", metric,
                            f"eval_every.samples = {samples} logs {logged}.",
                            "raise grpo_plugin.eval_every.samples or pick a logged pass@K")]
    return []


@dataclass
class BestTracker:
    """The best value of `metric` seen so far (higher is better when mode is max)."""

    metric: str = "eval/accuracy"
    mode: str = "max"
    best_value: float | None = None
    best_step: int | None = None
    last_value: float | None = None
    last_step: int | None = None

    def better(self, value: float) -> bool:
        if value is None or math.isnan(value):
            return False
        if self.best_value is None:
            return True
        return value > self.best_value if self.mode == "max" else value < self.best_value

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Record one evaluation; True when it is a new best (ties keep the earlier step)."""
        value = metrics.get(self.metric)
        value = None if value is None else float(value)
        self.last_value, self.last_step = value, step
        if value is not None and self.better(value):
            self.best_value, self.best_step = value, step
            return True
        return False

    def summary(self, checkpoint: str | None = None) -> str:
        """One line for the end of training: the winning step and its margin over the last."""
        if self.best_step is None:
            return f"grpo_plugin.keep_best: no evaluation logged {self.metric}; no best checkpoint"
        where = f" ({checkpoint})" if checkpoint else ""
        line = (f"grpo_plugin.keep_best: best {self.metric} = {self.best_value:.4g} at step "
                f"{self.best_step}{where}")
        if self.last_step == self.best_step:
            return line + "; it is also the last evaluation"
        if self.last_value is None or math.isnan(self.last_value):
            return line + f"; the last evaluation (step {self.last_step}) has no value"
        margin = self.best_value - self.last_value
        if margin == 0:
            return line + f"; the last evaluation (step {self.last_step}) ties it"
        return line + (f"; it beat the last evaluation (step {self.last_step}, "
                       f"{self.last_value:.4g}) by {abs(margin):.4g}")
