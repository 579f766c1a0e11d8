"""A new batch of prompts every step on Axolotl's legacy async GRPO path.

`trl.async_prefetch: true` without `trl.use_data_producer` builds Axolotl's legacy async trainer
(0.21: `AsyncGRPOTrainer._setup_async`). Its prompt sampler is TRL's `RepeatSampler` with
`repeat_count=10_000`, meant as "effectively infinite"; but `RepeatSampler` yields each *batch*
`repeat_count` times before the next one (trl/trainer/utils.py), so the run generates and trains
on its first batch of prompts for 10,000 steps (a SmolLM2 run: the same 2 GSM8K questions at all
20 steps). Axolotl's data-producer path samples with `repeat_count=1` and starts a new pass when
one ends, as intended.

`install(trainer_cls)` wraps `_submit_generation`, where the legacy path draws every batch (the
first ones while the trainer is built): before the first draw the sampler repeats each batch once,
and a pass that ends starts the next (a new permutation from the same seeded generator). On a
trainer whose sampler already repeats once it changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator
from typing import Any


FIXED = "_grpo_plugin_new_prompts_each_step"


def endless(loader: Iterable) -> Iterator:
    """Pass after pass over `loader`; an empty pass ends it (no endless loop over nothing)."""
    while True:
        empty = True
        for batch in loader:
            empty = False
            yield batch
        if empty:
            return


def repair(trainer: Any) -> bool:
    """Point the legacy path's prompt iterator at one batch per draw; True when it needed it."""
    loader = getattr(trainer, "_prompt_dataloader", None)
    sampler = getattr(loader, "sampler", None)
    if getattr(trainer, FIXED, False) or getattr(sampler, "repeat_count", 1) == 1:
        return False
    sampler.repeat_count = 1
    trainer._prompt_iter = endless(loader)
    setattr(trainer, FIXED, True)
    return True


def install(trainer_cls: type) -> bool:
    """Wrap `trainer_cls._submit_generation` (once); False where the class has none."""
    submit = getattr(trainer_cls, "_submit_generation", None)
    if submit is None or getattr(submit, FIXED, False):
        return False

    @functools.wraps(submit)
    def submit_a_new_batch(self, *args, **kwargs):
        repair(self)
        return submit(self, *args, **kwargs)

    setattr(submit_a_new_batch, FIXED, True)
    trainer_cls._submit_generation = submit_a_new_batch
    return True


def install_on_axolotl() -> bool:
    """`install` on the installed Axolotl's async GRPO trainer; False where it has none."""
    try:
        from axolotl.core.trainers.grpo.async_trainer import AsyncGRPOTrainer
    except ImportError:
        return False
    return install(AsyncGRPOTrainer)
