"""See what the model is doing: the rollout log and learning metrics of a GRPO run.

`attach(cfg, trainer)` is called by the plugin's `post_trainer_create` hook; the
report over the log is `axolotl-grpo report OUTPUT_DIR`.
"""

from ..rollouts.log import RolloutLogWriter, read_rollouts
from ..rollouts.metrics import DEFAULT_REFLECTION_PHRASES, ReflectionMatcher, step_metrics
from .trainer_hook import attach


__all__ = [
    "DEFAULT_REFLECTION_PHRASES", "ReflectionMatcher", "RolloutLogWriter", "attach",
    "read_rollouts", "step_metrics",
]
