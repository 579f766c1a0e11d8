"""The Axolotl plugin: each hook is one call into the package that owns the step
(docs/architecture.md), and every user-fixable error leaves as one readable block.

Axolotl 0.21 also registers the plugin from its `axolotl.plugins` entry point and then calls
every hook on every config, so each hook first asks `_ours(cfg)` (training/enabled.py).

`register` reads the config once into `self.run` (config/run.py); the later hooks pass it down."""

from __future__ import annotations

import functools
from contextlib import contextmanager
from dataclasses import replace

from axolotl.integrations.base import BasePlugin
from axolotl.utils.logging import get_logger

from .errors import PluginError


LOG = get_logger(__name__)


@contextmanager
def reported_as_exit():
    """A PluginError (config problem, server failure) becomes a clean exit with its message,
    not a traceback: the message names the key, the value and the fix."""
    try:
        yield
    except PluginError as exc:
        raise SystemExit(f"\n{exc.render()}\n") from None


def report_errors_during_training(trainer) -> None:
    """A PluginError raised while training (the vLLM server past its restarts, ...) ends the run
    with its message, as the hooks' errors do, not under a trainer traceback."""
    train = trainer.train
    if getattr(train, "_grpo_plugin_reported", False):
        return

    @functools.wraps(train)
    def reported_train(*args, **kwargs):
        with reported_as_exit():
            return train(*args, **kwargs)

    reported_train._grpo_plugin_reported = True
    trainer.train = reported_train


class CPUThreadsPlugin(BasePlugin):
    """For a config the GRPO plugin does not train (an SFT cold start on CPU): the one thing it does
    is the torch thread count of a training process without a GPU (training/threads.py). List it under
    `plugins:`. It accepts a `grpo_plugin:` section, of which only what our dataset transforms read
    there matters (`system_prompt_role`, the GRPO run's prompt layout)."""

    def get_input_args(self) -> str:
        return "axolotl_grpo_plugin.config.args.CPUThreadsPluginArgs"

    def register(self, cfg: dict):
        from .system.launch import cuda_gpu_count
        from .training import threads
        from .vllm import autostart

        if autostart.is_training_process() and cuda_gpu_count() == 0:  # torch's answer: ROCm too
            threads.configure(LOG)


class GRPOPlugin(BasePlugin):
    """R1-style GRPO: registered rewards and transforms, and config checks before load."""

    def _ours(self, cfg) -> bool:
        from .training.enabled import applies, first_instance

        return cfg is not None and applies(cfg) and first_instance(self)

    def _run(self, cfg):
        """The run `register` read; read here when register did not (the vLLM server child)."""
        from .config.run import read_run

        run = getattr(self, "run", None)
        return run if run is not None else read_run(cfg)

    def get_input_args(self) -> str:
        return "axolotl_grpo_plugin.config.args.GRPOPluginArgs"

    def register(self, cfg: dict):
        """Runs on the raw config, before Axolotl's schema drops unknown keys."""
        if not self._ours(cfg):
            return
        from . import sandbox
        from .check.prepare import checked_run, prepare_config
        from .remote import declared
        from .system.launch import cuda_gpu_count, current_launch, global_rank, local_rank
        from .training import cpu_bf16, run_lock, threads
        from .training.checkpoints import resume_target
        from .vllm import autostart, cpu, relaunch

        if autostart.is_server_child():
            return  # the autostarted server loads the config the trainer already checked
        if autostart.is_training_process() and cuda_gpu_count() == 0:
            threads.configure(LOG)  # every core, not accelerate's one thread (training/threads.py)
        with reported_as_exit():
            run = checked_run(cfg)  # the one reading; a wrong value is reported here, with the unknown keys
            # First: the checks count this launch's processes, and the relaunch may change them.
            relaunch.relaunch_if_needed(run)
            launch = current_launch()
            if not autostart.is_training_process():
                launch = replace(launch, gpus=None)  # `axolotl preprocess` & co. start no server
            run, warnings = prepare_config(cfg, launch, run)
            for warning in warnings:
                LOG.warning(warning)
            self.sampling = cpu_bf16.sampling_mode(run.trl.use_vllm, run.trl.vllm_importance_sampling_mode)
            if autostart.is_training_process() and not launch.has_gpu and local_rank() == 0:
                LOG.info(cpu_bf16.line(run.plugin.cpu_bf16, cpu_bf16.bf16_units(), self.sampling))
            if autostart.is_training_process() and global_rank() == 0:
                # one run per output_dir: refused here, before data, model or a vLLM server
                run_lock.hold(run.output_dir)
            if autostart.is_training_process():  # remote budgets count per run, across ranks
                declared.start_run(run.output_dir, [s.name for s in run.plugin.remote_rewards or []],
                                 fresh=resume_target(run) is None, main=global_rank() == 0)
            sandbox.configure(run)  # the code rewards run programs in the config's sandbox
            run = cpu.configure(cfg, run)  # vLLM's CPU build only: worker extension, float32
            self.run = autostart.on_register(cfg, run)  # the server's address, written into cfg and the run

    def get_training_args(self, cfg):
        """`grpo_plugin.trl_args`: GRPOConfig options Axolotl has no key for; the tool loop's
        rounds; bfloat16 autocast on a CPU run (`grpo_plugin.cpu_bf16`)."""
        if not self._ours(cfg):
            return None
        from .config.trl_args import configured
        from .system.launch import cuda_gpu_count
        from .tools.trainer import training_args
        from .training import cpu_bf16

        run = self._run(cfg)
        sampling = self.sampling if run is getattr(self, "run", None) else cpu_bf16.sampling_mode(
            run.trl.use_vllm, run.trl.vllm_importance_sampling_mode)  # register's, else worked out here
        precision = cpu_bf16.training_args(run.plugin.cpu_bf16, cuda_gpu_count() > 0, cpu_bf16.bf16_units(), sampling)
        return {**configured(run), **training_args(run), **precision} or None

    def get_trainer_cls(self, cfg):
        """None: the stock GRPO trainer (Axolotl 0.21's RL builder asks every plugin)."""
        return None

    def add_callbacks_pre_trainer(self, cfg, model):
        """No callbacks: the hook Axolotl calls right before it builds TRL's trainer, which connects
        to the vLLM server, so an autostarted server is waited for here (docs/vllm.md)."""
        if self._ours(cfg):
            from .vllm import autostart

            with reported_as_exit():
                autostart.before_trainer()
        return []

    def pre_model_load(self, cfg):
        if not self._ours(cfg):
            return
        from .check.trainer import async_key
        from .tools import trainer as tool_trainer
        from .vllm import autostart, cpu

        with reported_as_exit():
            run = self._run(cfg)
            autostart.before_model_load(run)
        cpu.patch_trl_for_cpu(run)  # vLLM's CPU build only: TRL connects without NCCL
        if tool_trainer.wanted(run):  # Axolotl passes no tools to TRL's trainer (docs/tools.md)
            self.tools = tool_trainer.install(run)
        if async_key(run):  # Axolotl's legacy async path would repeat its first prompts every step
            from .training.async_prompts import install_on_axolotl

            install_on_axolotl()

    def post_trainer_create(self, cfg, trainer):
        """Trackers for the end-of-training evaluation; rollout log and learning metrics
        on the stock GRPO trainer (docs/observe.md); the periodic evaluation; what reached
        GRPOConfig; the vLLM weight push on CPU, the weight-sync watch and the /generate/ deadline
        (docs/vllm.md); each forward trimmed to its rows' length (training/trim_padding.py); rows with
        advantage 0 skipped where that changes nothing (training/zero_advantage.py)."""
        if not self._ours(cfg):
            return
        from .config.trl_args import log_reached
        from .evaluate import periodic
        from .evaluate.hook import remember_trackers
        from .observe import attach, doctor
        from .sources import pass_rates
        from .tools import post_tool_turns
        from .tools import trainer as tool_trainer
        from .training import (
            async_prompts,
            cpu_bf16,
            dynamic_sampling,
            interrupted,
            run_lock,
            trim_padding,
            zero_advantage,
        )
        from .vllm import cpu
        from .watch import recovery, saves, sync_guard

        if trainer.accelerator.is_main_process:  # taken in `register` already (a no-op then),
            with reported_as_exit():               # unless the launch was not recognised there
                run_lock.hold(trainer.args.output_dir)
        interrupted.install(trainer)  # Ctrl-C: exit 130 and OUTPUT_DIR/INTERRUPTED
        async_prompts.attach(trainer)  # Axolotl's legacy async path: resume where the prompts were
        report_errors_during_training(trainer)
        saves.watch_saves(trainer)  # a full disk while saving: which checkpoint is whole
        cpu.attach_weight_sync(trainer)  # vLLM's CPU build only: layer-wise reload_weights push
        cpu_bf16.float32_logits(trainer)  # under CPU bfloat16 autocast: the logits in float32
        trim_padding.install(trainer)  # each forward at its own rows' length, not the generation's longest
        why_trained = zero_advantage.install(trainer)  # rows with advantage 0: no forward, no backward
        if trainer.accelerator.is_main_process:
            how = zero_advantage.collective(trainer.accelerator)
            LOG.info("axolotl_grpo_plugin: rows with advantage 0 %s", (
                f"are trained as the others: {why_trained}" if why_trained is not None else
                "skip the forward and backward" + (f" ({how}: TRL's loss on one token instead)" if how else "")))
        with reported_as_exit():
            run = self._run(cfg)
            kept = pass_rates.apply(run.plugin.pass_rate_filter, trainer)  # before the dataloader is built
            sampler = dynamic_sampling.attach(run, trainer)  # judges each round, beneath the rollout log
        if kept is not None and trainer.accelerator.is_main_process:
            LOG.info("axolotl_grpo_plugin: pass_rate_filter: training on %d of %d rows (%d without a pass rate "
                     "in %s)", kept["kept"], kept["rows"], kept["unrated"], run.plugin.pass_rate_filter.file)
        self.eval_trackers = remember_trackers(trainer)
        observer = attach(run, trainer, marks=sampler.marks if sampler is not None else None)
        # the rounds, above the rollout log: it logs every round's rollouts (docs/dynamic-sampling.md)
        dynamic_sampling.fill(sampler, trainer, getattr(observer, "writer", None))
        with reported_as_exit():  # every N steps on a held-out slice; keep-best (docs/evaluate.md)
            periodic.attach(cfg, run, trainer, getattr(observer, "writer", None))
        log_reached(run, trainer, LOG)
        # failure signatures in the logged metrics, recorded in the rollout log (docs/observe.md)
        writer = getattr(observer, "writer", None)
        doctor.attach(run, trainer, writer=writer)
        sync_guard.attach(run, trainer)
        # a dead or stalled autostarted server is restarted; each restart is a rollout-log record
        recovery.attach(run, trainer, record=(lambda r: writer.write_step([r])) if writer is not None else None)
        if getattr(self, "tools", None):
            tool_trainer.attach_metrics(trainer, self.tools)
        if tool_trainer.wanted(run):
            post_tool_turns.fix(trainer)  # TRL 1.9: each post-tool turn after its own history

    def post_train_unload(self, cfg):
        if not self._ours(cfg):
            return
        from .evaluate.hook import evaluate_at_end
        from .vllm import autostart

        autostart.after_training()  # first: frees the reserved GPU
        evaluate_at_end(cfg, self._run(cfg), getattr(self, "eval_trackers", None))
