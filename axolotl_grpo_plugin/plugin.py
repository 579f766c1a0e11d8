"""The Axolotl plugin: validates GRPO configs and wires registered names into Axolotl."""

from __future__ import annotations

import os

from axolotl.integrations.base import BasePlugin
from axolotl.utils.logging import get_logger

from .errors import GRPOConfigError
from .evaluate.hook import check_config as check_eval_at_end
from .validation import Launch, prepare_config

LOG = get_logger(__name__)


def current_launch() -> Launch:
    """The launch this process belongs to: accelerate/torchrun set WORLD_SIZE per rank."""
    import torch

    return Launch(
        processes=int(os.environ.get("WORLD_SIZE", "1") or 1),
        has_gpu=torch.cuda.is_available(),
    )


class GRPOPlugin(BasePlugin):
    """R1-style GRPO: registered rewards and transforms, and config checks before load."""

    def get_input_args(self) -> str:
        return "axolotl_grpo_plugin.args.GRPOPluginArgs"

    def register(self, cfg: dict):
        """Runs on the raw config, before Axolotl's schema drops unknown keys."""
        try:
            warnings = prepare_config(cfg, current_launch())
            check_eval_at_end(cfg)
        except GRPOConfigError as exc:
            raise SystemExit(f"\n{exc}\n") from None
        for warning in warnings:
            LOG.warning(warning)

    def post_trainer_create(self, cfg, trainer):
        from .evaluate.hook import remember_trackers

        self.eval_trackers = remember_trackers(trainer)

    def post_train_unload(self, cfg):
        from .evaluate.hook import evaluate_at_end

        evaluate_at_end(cfg, getattr(self, "eval_trackers", None))
