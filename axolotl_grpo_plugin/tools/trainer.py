"""`grpo_plugin.tools` and `environment` into TRL's GRPOTrainer, which Axolotl (0.19-0.21) never
passes them to; `max_tool_calls` into GRPOConfig; `tools/*` metrics each step.

Axolotl's RL builder creates the trainer with the keyword arguments of
`GRPOStrategy.set_trainer_kwargs(cfg)` (where it puts `trl.rollout_func`), the same in 0.19 and
0.21; `install` wraps that classmethod so the kwargs carry `tools=` (contained, tools/loader.py)
and `environment_factory=`. TRL then renders the tools into every prompt, runs its tool loop
(parse, call, append the result, generate again, `tool_mask` out of the loss) and logs
`tools/call_frequency` and `tools/failure_frequency` (exceptions only); the plugin adds
`tools/errors`, `tools/timeouts` and `tools/error_rate` (its containment's counts) per step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..config.run import Run
from . import loader


LOG = logging.getLogger("axolotl_grpo_plugin.tools")
ERROR_RATE = "tools/error_rate"  # of the calls that reached a tool: errors and timeouts
_installed: dict[str, Any] = {}


def wanted(run: Run) -> bool:
    return bool(run.plugin.tools or run.plugin.environment)


def training_args(run: Run) -> dict[str, Any]:
    """The GRPOConfig fields the tool loop reads."""
    return {"max_tool_calling_iterations": run.plugin.max_tool_calls} if wanted(run) else {}


def install(run: Run) -> list[Callable]:
    """Make Axolotl's GRPO trainer get this run's tools; returns them (contained). Idempotent."""
    from axolotl.core.trainers.grpo import GRPOStrategy

    tools = loader.load(run)
    factory = loader.environment_factory(run)
    original = _installed.setdefault("set_trainer_kwargs", GRPOStrategy.set_trainer_kwargs.__func__)

    def set_trainer_kwargs(cls, cfg):
        kwargs = original(cls, cfg)
        if tools:
            kwargs["tools"] = tools
        if factory is not None:
            kwargs["environment_factory"] = factory
        return kwargs

    GRPOStrategy.set_trainer_kwargs = classmethod(set_trainer_kwargs)
    names = ", ".join(getattr(t, "__name__", "?") for t in tools) or "none"
    LOG.info("axolotl_grpo_plugin: tools for the rollouts: %s%s (each call within %g s, at most %d rounds)",
             names, f"; environment {run.plugin.environment}" if factory is not None else "",
             run.plugin.tool_timeout_s, run.plugin.max_tool_calls)
    return tools


def attach_metrics(trainer: Any, tools: list[Callable]) -> None:
    """`tools/errors`, `tools/timeouts` and `tools/error_rate` each step: what containment turned
    into error results."""
    from transformers import TrainerCallback

    stats = [t.tool_stats for t in tools if hasattr(t, "tool_stats")]

    class ToolMetrics(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            counts = [s.take() for s in stats]
            try:
                metrics = trainer._metrics["train"]
                calls = sum(c["calls"] for c in counts)
                failed = sum(c["errors"] + c["timeouts"] for c in counts)
                metrics["tools/errors"].append(float(sum(c["errors"] for c in counts)))
                metrics["tools/timeouts"].append(float(sum(c["timeouts"] for c in counts)))
                metrics[ERROR_RATE].append(failed / calls if calls else 0.0)
            except Exception as exc:  # metrics never stop training
                LOG.warning("axolotl_grpo_plugin: tool metrics are off (%s: %s)", type(exc).__name__, exc)
                stats.clear()

    if stats:
        trainer.add_callback(ToolMetrics())
