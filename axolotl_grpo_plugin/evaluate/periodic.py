"""Evaluate while training (`grpo_plugin.eval_every`) and keep the best checkpoint by that task
metric (`grpo_plugin.keep_best`): a TrainerCallback the plugin attaches in `post_trainer_create`.

GRPO's reward is not task accuracy (it can saturate while accuracy falls), so every `steps`
optimizer steps the live policy is scored on a fixed held-out slice with the training
transform, template and rewards, by the same evaluator as `eval_at_end` (evaluate/core.py).

Which engine generates: the one the trainer already runs, so there is no second copy of the
model. With `trl.use_vllm` that is the vLLM server (through the trainer's client) or the
colocated engine (`generation.trainer_engine` says when it cannot be used, e.g. sleep mode);
its weights are first brought to the current step on every rank with the trainer's own
`sync_weights`, and `_last_loaded_step` is set as TRL sets it, so TRL's next generation (same
step, same weights) skips that push instead of repeating it. Otherwise transformers generates
on the in-memory (unwrapped) model in eval mode under no_grad, back to train mode after. The
torch RNG is forked either way, so training continues as without the evaluation.

Who evaluates: rank 0 alone (in server mode only it holds the client), then it broadcasts the
metrics to every rank (`broadcast_object_list`, which also holds the other ranks until rank 0
is done). So every rank logs the same numbers and takes the same keep-best decision: a forced
save is a collective under DeepSpeed/FSDP, and ranks that disagreed on it would deadlock. The
price: the other GPUs idle during the evaluation (its cost is printed), and sharded weights
(ZeRO-3, FSDP) cannot generate on one rank, which the config checks refuse.

Metrics reach the trackers through `transformers.Trainer.log` as `eval_accuracy`, ... which
every tracker shows as `eval/accuracy`, ... (GRPOTrainer.log would fold in and clear the
training metrics of the running logging period, so its base method is called).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..rollouts.log import EVAL, KIND_FIELD
from ..training.trainer_kind import wait_for_generations
from .best import BestTracker
from .periodic_config import options


LOG = logging.getLogger("axolotl_grpo_plugin.evaluate")
BEST_FILE = "best_checkpoint.json"


def attach(cfg: Any, run: Any, trainer: Any, writer: Any = None) -> PeriodicEvaluation | None:
    """Add the callback to the trainer when `eval_every` is set; `writer` is the rollout log's."""
    every, best = options(run)
    if every is None:
        return None
    callback = PeriodicEvaluation(cfg, trainer, every, best, writer)
    trainer.add_callback(callback)
    return callback


class PeriodicEvaluation(TrainerCallback):
    """Scores the live model every N steps; marks (and forces the save of) the best step."""

    def __init__(self, cfg: Any, trainer: Any, every: dict[str, Any], best: Any = None,
                 writer: Any = None):
        from ..sampling.prompts import load_config

        self.trainer = trainer
        self.every = dict(every)
        self.steps = int(self.every.pop("steps"))
        self.cfg = load_config(cfg)
        self.writer = writer
        self.best = BestTracker(best.metric, best.mode) if best is not None else None
        self.main = trainer.accelerator.is_main_process
        self.problems = None  # built once, on rank 0, at the first evaluation
        self.generator = None  # the trainer's vLLM engine, on rank 0, from the first evaluation
        self.pushed = 0.0  # seconds the weight push before the latest evaluation took
        self.engine_failed = False  # rank 0: the engine raised once; transformers from then on
        self.engine, self.why_not_engine = self._choose_engine(self.every.pop("backend", "auto"))
        self.history: list[dict[str, Any]] = []
        self.last_step: int | None = None

    def due(self, state: Any) -> bool:
        step = state.global_step
        return step > 0 and step != self.last_step and (
            step % self.steps == 0 or (state.max_steps and step >= state.max_steps))

    def on_train_begin(self, args, state, control, **kwargs):
        """A resumed run continues the keep-best record the checkpoint's trainer state holds."""
        if self.best is not None and state.best_global_step and state.best_metric is not None:
            self.best.best_step, self.best.best_value = state.best_global_step, state.best_metric
        return control

    def on_step_end(self, args, state, control, **kwargs):
        if not self.due(state):
            return control
        step = self.last_step = state.global_step
        self.pushed = self._sync_engine() if self.engine else 0.0  # every rank, before rank 0 generates
        metrics, seconds = self._shared(self._evaluate_on_main())
        if metrics is None:
            return control
        self.history.append({"step": step, "seconds": seconds, "backend": self.backend, **metrics})
        from transformers import Trainer

        should_log = control.should_log  # the handler's on_log clears it: this step's own
        Trainer.log(self.trainer, {"eval_" + k.removeprefix("eval/"): v for k, v in metrics.items()})
        control.should_log = self.trainer.control.should_log = should_log  # training log still runs
        if self.writer is not None:
            # (`kind`: the marker docs/observe.md gave readers of the log before issue 48)
            self.writer.write_step([{KIND_FIELD: EVAL, "kind": EVAL, "step": step, "mode": "eval",
                                     "metrics": metrics, "seconds": seconds, "backend": self.backend}])
        if self.best is not None and self.best.update(step, metrics):
            # forces a checkpoint at this step; HF keeps state.best_model_checkpoint out of
            # save_total_limit's rotation and records it in the checkpoint's trainer_state.json
            state.best_metric = self.best.best_value
            state.best_global_step = step
            state.best_model_checkpoint = os.path.join(args.output_dir, f"checkpoint-{step}")
            control.should_save = True
        return control

    def on_train_end(self, args, state, control, **kwargs):
        if self.best is None or not self.main:
            return control
        checkpoint = state.best_model_checkpoint if self.best.best_step else None
        print(self.best.summary(checkpoint), flush=True)
        record = {"metric": self.best.metric, "mode": self.best.mode, "step": self.best.best_step,
                  "value": self.best.best_value, "checkpoint": checkpoint,
                  "last_step": self.best.last_step, "last_value": self.best.last_value}
        try:
            Path(args.output_dir).mkdir(parents=True, exist_ok=True)
            Path(args.output_dir, BEST_FILE).write_text(json.dumps(record, indent=2) + "\n")
        except OSError as exc:
            LOG.warning("grpo_plugin.keep_best: cannot write %s: %s", BEST_FILE, exc)
        return control

    @property
    def backend(self) -> str:
        """What generates the evaluation (rank 0's view)."""
        return "transformers" if self.engine is None or self.engine_failed else self.engine

    def _choose_engine(self, backend: str) -> tuple[str | None, str]:
        """The trainer's vLLM engine when it can generate the evaluation (same answer on every
        rank), else None and why; `backend: transformers` in the settings asks for None."""
        from ..sampling.generation import trainer_engine

        if backend == "transformers":
            return None, "eval_every.backend: transformers"
        engine, why = trainer_engine(self.trainer)
        if engine is None and getattr(self.trainer, "use_vllm", False) and self.main:
            LOG.warning("grpo_plugin.eval_every: generating with transformers on the trainer's "
                        "model, not with vLLM: %s", why)
        return engine, why

    def _sync_engine(self) -> float:
        """Every rank, as TRL does before a generation: bring the engine to this step's weights
        (server: the main process pushes; colocate: each rank loads its own engine) unless
        TRL's bookkeeping says it holds them already. Returns the seconds it took."""
        trainer = self.trainer
        step = trainer.state.global_step
        # Axolotl's async trainer: no push, and no evaluation, under a background batch
        wait_for_generations(trainer)
        if getattr(trainer, "_last_loaded_step", None) == step:
            return 0.0
        started = time.perf_counter()
        with getattr(getattr(trainer, "data_producer", None), "_generate_lock", None) or contextlib.nullcontext():
            trainer.vllm_generation.sync_weights()
        trainer._last_loaded_step = step  # what TRL records after its own push at this step
        if hasattr(trainer, "_last_synced_step"):
            trainer._last_synced_step = step  # ... and Axolotl's async trainer, which skips its push then
        return time.perf_counter() - started

    def _evaluate_on_main(self) -> tuple[dict[str, float], float] | None:
        """Rank 0: the metrics of the live policy on the fixed slice, and the seconds it took
        (the weight push before it, `self.pushed` seconds, is printed beside)."""
        if not self.main:
            return None
        import torch

        from ..errors import PluginError
        from ..sampling.generation import engine_generator
        from ..sampling.prompts import EvalError
        from ..sampling.sampler import Sampler, SampleRequest
        from .core import evaluate

        started = time.perf_counter()
        model = self.trainer.accelerator.unwrap_model(self.trainer.model)
        tokenizer = self.trainer.processing_class
        options = {k: v for k, v in self.every.items() if k not in ("split", "dataset", "limit")}
        try:
            if self.problems is None:  # the fixed slice, rendered as evaluate renders it (the run's tools too)
                self.problems = Sampler(SampleRequest(
                    self.cfg, model, tokenizer=tokenizer, split=self.every.get("split", "test"),
                    dataset=self.every.get("dataset"), limit=self.every.get("limit"))).problems()
            if self.engine and not self.engine_failed and self.generator is None:
                self.generator = engine_generator(self.trainer, tokenizer, self.engine)
            devices = [model.device] if getattr(model, "device", None) is not None and \
                model.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):  # training's RNG stream is untouched
                run = functools.partial(evaluate, self.cfg, model, tokenizer=tokenizer,
                                        backend="transformers", problems=self.problems, progress=False,
                                        split=self.every.get("split", "test"), **options)
                try:
                    result = run(generator=self.generator)
                except Exception as exc:  # a request the engine refuses must not end the training
                    if self.generator is None or isinstance(exc, (EvalError, PluginError)):
                        raise  # PluginError: the server died (watch/liveness.py); training cannot go on
                    LOG.error("grpo_plugin.eval_every: the %s engine failed (%s: %s); this and later "
                              "evaluations generate with transformers on the trainer's model",
                              self.engine, type(exc).__name__, str(exc)[:300])
                    self.generator, self.engine_failed = None, True
                    result = run(generator=None)
        except EvalError as exc:
            LOG.error("grpo_plugin.eval_every: %s; training continues", exc)
            return None
        seconds = time.perf_counter() - started
        metrics = result.metrics("eval/")
        shown = ", ".join(f"{k.removeprefix('eval/')} {v:.4g}" for k, v in metrics.items()
                          if "/" not in k.removeprefix("eval/"))
        push = f"; weights pushed to it first in {self.pushed:.1f} s" if self.pushed else ""
        print(f"grpo_plugin.eval_every: step {self.trainer.state.global_step}: {shown} "
              f"({result.n_problems} problems x {1 + result.samples} completions with "
              f"{result.backend} in {seconds:.1f} s{push})", flush=True)
        return metrics, seconds

    def _shared(self, outcome):
        """Rank 0's outcome on every rank (one collective, reached by all ranks every time)."""
        if self.trainer.accelerator.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            box = [outcome]
            broadcast_object_list(box, from_process=0)
            outcome = box[0]
        return (None, 0.0) if outcome is None else outcome
