"""The Axolotl plugin: validates GRPO configs and wires registered names into Axolotl."""

from __future__ import annotations

import os
import sys

from axolotl.integrations.base import BasePlugin
from axolotl.utils.logging import get_logger

from .errors import GRPOConfigError
from .evaluate.hook import check_config as check_eval_at_end
from .validation import Launch, prepare_config
from .vllm import autostart as vllm_autostart
from .vllm import cpu as vllm_cpu
from .vllm import relaunch as vllm_relaunch

LOG = get_logger(__name__)


def current_launch() -> Launch:
    """The launch this process belongs to: accelerate/torchrun set WORLD_SIZE per rank."""
    import torch

    world_size = os.environ.get("WORLD_SIZE")
    serving = not world_size and any(a.replace("_", "-") == "vllm-serve" for a in sys.argv[1:3])
    return Launch(
        processes=None if serving else int(world_size or 1),
        has_gpu=torch.cuda.is_available(),
    )


class GRPOPlugin(BasePlugin):
    """R1-style GRPO: registered rewards and transforms, and config checks before load."""

    def get_input_args(self) -> str:
        return "axolotl_grpo_plugin.args.GRPOPluginArgs"

    def register(self, cfg: dict):
        """Runs on the raw config, before Axolotl's schema drops unknown keys."""
        if vllm_autostart.is_server_child():
            return  # the autostarted server loads the config the trainer already checked
        # First: the checks below count this launch's processes, the relaunch may change them.
        vllm_relaunch.relaunch_if_needed(cfg)
        try:
            warnings = prepare_config(cfg, current_launch())
            check_eval_at_end(cfg)
            vllm_cpu.configure(cfg)  # vLLM's CPU build only: worker extension, float32
        except GRPOConfigError as exc:
            raise SystemExit(f"\n{exc}\n") from None
        for warning in warnings:
            LOG.warning(warning)
        vllm_autostart.register_hook(cfg)

    def get_training_args(self, cfg):
        """`grpo_plugin.trl_args`: GRPOConfig options Axolotl 0.19 has no key for."""
        from .trl_args import configured

        return configured(cfg) or None

    def pre_model_load(self, cfg):
        vllm_autostart.pre_model_load_hook(cfg)
        vllm_cpu.patch_trl_for_cpu(cfg)  # vLLM's CPU build only: TRL connects without NCCL

    def post_trainer_create(self, cfg, trainer):
        """Trackers for the end-of-training evaluation; rollout log and learning metrics
        on the stock GRPO trainer (docs/observe.md)."""
        from .evaluate.hook import remember_trackers
        from .observe import attach

        from .trl_args import report

        vllm_cpu.attach_weight_sync(trainer)  # vLLM's CPU build only: layer-wise reload_weights push
        self.eval_trackers = remember_trackers(trainer)
        attach(cfg, trainer)
        report(cfg, trainer, LOG)

    def post_train_unload(self, cfg):
        from .evaluate.hook import evaluate_at_end

        vllm_autostart.after_training(cfg)  # first: frees the reserved GPU
        evaluate_at_end(cfg, getattr(self, "eval_trackers", None))
