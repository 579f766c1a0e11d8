"""Loaded into the GRPO training process by bench/bench_real_model.py: appends one JSON line
per timed block to $REAL_MODEL_TIMING_FILE, so a step's time splits into generation, rewards,
weight push, forward+backward and optimizer. TRL's profiling blocks (vLLM.generate,
sync_weights, each reward function) report only to trackers; this records them too."""

from __future__ import annotations

import functools
import json
import os
import time


PATH = os.environ.get("REAL_MODEL_TIMING_FILE")


def record(name: str, seconds: float, profiled: bool = False) -> None:
    with open(PATH, "a") as f:
        f.write(json.dumps({"name": name, "seconds": seconds, "profiled": profiled,
                            "t": time.time()}) + "\n")


def timed(owner, attribute: str, name: str) -> None:
    original = getattr(owner, attribute)

    @functools.wraps(original)
    def wrapper(*args, **kwargs):
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            record(name, time.perf_counter() - started)

    setattr(owner, attribute, wrapper)


if PATH:
    from accelerate.optimizer import AcceleratedOptimizer
    from trl.extras.profiling import ProfilingContext
    from trl.trainer.grpo_trainer import GRPOTrainer

    profiled = ProfilingContext._log_metrics

    def _log_metrics(self, duration: float) -> None:
        record(self.name, duration, profiled=True)
        profiled(self, duration)

    ProfilingContext._log_metrics = _log_metrics
    timed(GRPOTrainer, "training_step", "training_step")
    timed(GRPOTrainer, "_generate_and_score_completions", "generate_and_score")
    timed(AcceleratedOptimizer, "step", "optimizer.step")
