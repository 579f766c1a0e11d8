"""Which GRPO trainer Axolotl built: the stock (sync) one, or its async one (`trl.async_prefetch` /
`trl.use_data_producer`), which generates the next batch in a background thread with the weights
of one push earlier: its scoring is hooked elsewhere (observe/trainer_hook.py), the weight-sync
guard allows for that staleness (watch/sync_guard.py), and a push or an evaluation must wait for
the batches in flight."""

from __future__ import annotations

import concurrent.futures
from typing import Any


def is_async_grpo(trainer: Any) -> bool:
    return "Async" in type(trainer).__name__


def queued_generations(trainer: Any) -> list[concurrent.futures.Future]:
    """The batches Axolotl's async trainer is generating in the background, oldest first (its
    legacy `trl.async_prefetch` path queues them in `_async_queue`); [] on any other trainer."""
    batches = getattr(getattr(trainer, "_async_queue", None), "queue", None) or ()
    return [f for f in list(batches) if isinstance(f, concurrent.futures.Future)]


def wait_for_generations(trainer: Any, oldest_only: bool = False) -> None:
    """Wait (never raise: the trainer reads each result itself) until the queued background
    batches are generated, as Axolotl does before it pushes weights: a push under a running
    generation would change the weights halfway through a batch."""
    pending = queued_generations(trainer)
    if pending:
        concurrent.futures.wait(pending[:1] if oldest_only else pending)
