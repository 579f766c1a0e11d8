"""Which GRPO trainer Axolotl built: the stock (sync) one, or its async one (`trl.async_prefetch` /
`trl.use_data_producer`), which generates the next batch in a background thread with the weights
of one push earlier, so what the plugin reads per step (rollouts, sampler logprobs) does not apply."""

from __future__ import annotations

from typing import Any


def is_async_grpo(trainer: Any) -> bool:
    return "Async" in type(trainer).__name__
