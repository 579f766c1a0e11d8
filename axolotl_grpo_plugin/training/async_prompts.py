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

On a resumed run the batches drawn while the trainer was built are the first ones of that order,
which the run before trained on. `resume_at` (at train begin, when the state says step N > 0)
drops them and draws from where step N left off, as transformers' Trainer skips the batches a
resumed sync run has trained on.
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


def batches_trained(trainer: Any, step: int) -> int:
    """Generation batches the legacy path used up in `step` optimizer steps: one batch serves
    `steps_per_generation` micro-batches, `num_iterations` times; a step is
    `gradient_accumulation_steps` micro-batches."""
    args = trainer.args
    accumulation = int(getattr(args, "gradient_accumulation_steps", 1) or 1)
    per_batch = int(getattr(args, "steps_per_generation", None) or accumulation) * int(
        getattr(trainer, "num_iterations", 1) or 1)
    return step * accumulation // per_batch


def resume_at(trainer: Any, step: int) -> bool:
    """Continue the prompt order after `step` optimizer steps (a resumed run); True when it did.

    The batches queued while the trainer was built are waited for and dropped (never raising:
    their generation is thrown away), the sampler's generator is seeded again so the order is the
    one the first run drew, `batches_trained` batches are skipped, and as many new batches are
    queued as were dropped."""
    import concurrent.futures
    import queue as queues

    if step <= 0 or not getattr(trainer, FIXED, False):
        return False
    dropped = []
    while True:
        try:
            dropped.append(trainer._async_queue.get_nowait())
        except queues.Empty:
            break
    concurrent.futures.wait([f for f in dropped if isinstance(f, concurrent.futures.Future)])
    loader = trainer._prompt_dataloader
    sampler = loader.sampler
    if getattr(sampler, "generator", None) is not None and getattr(sampler, "seed", None) is not None:
        sampler.generator.manual_seed(sampler.seed)
    batches = endless(loader)
    for _ in range(batches_trained(trainer, step)):
        next(batches, None)
    trainer._prompt_iter = batches
    for _ in dropped:
        trainer._submit_generation()
    return True


def resume_callback(trainer: Any):
    """The TrainerCallback that calls `resume_at` at train begin (the state is loaded by then)."""
    from transformers import TrainerCallback

    class ContinuePromptOrder(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            resume_at(trainer, state.global_step)
            return control

    return ContinuePromptOrder()


def attach(trainer: Any) -> None:
    """On a trainer whose prompts `install` mended: continue their order on resume."""
    if getattr(trainer, FIXED, False) and hasattr(trainer, "add_callback"):
        trainer.add_callback(resume_callback(trainer))


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
