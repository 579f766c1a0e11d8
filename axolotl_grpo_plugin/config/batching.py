"""GRPO batch arithmetic: the rule users trip over most, with valid alternatives.

TRL groups completions by prompt, so `num_generations` must divide the generation
batch, which by default is micro_batch_size x gradient_accumulation_steps x
training processes (one generation batch per optimizer step).
"""

from __future__ import annotations

import math

from ..errors import counted


def generation_batch_size(
    micro_batch_size: int, gradient_accumulation_steps: int, processes: int
) -> int:
    return micro_batch_size * gradient_accumulation_steps * processes


# Divisors are found by trial division up to the square root of the batch, at most this many
# tries: exact up to a batch of 10^12, and a check of an absurd value still answers at once.
_MAX_DIVISOR_TRIES = 10**6


def valid_num_generations(batch: int, limit: int = 8, processes: int = 1) -> list[int]:
    """Group sizes (>= 2) that divide `batch` with a whole group per process, largest first:
    bigger groups, better baselines."""
    top = batch // max(processes, 1)
    divisors = set()
    for d in range(1, min(math.isqrt(max(batch, 0)), _MAX_DIVISOR_TRIES) + 1):
        if batch % d == 0:
            divisors.update((d, batch // d))
    return sorted((g for g in divisors if 2 <= g <= top), reverse=True)[:limit]


def micro_batch_sizes_for(
    num_generations: int, gradient_accumulation_steps: int, processes: int, limit: int = 4
) -> list[int]:
    """The smallest micro_batch_size values (up to 4 x num_generations) that make
    `num_generations` (1 or more) divide the batch and give every process at least one whole
    group (Axolotl 0.19's extra rule).

    Arithmetic, not a scan (a huge num_generations must not hang `check`): the batch
    mbs x gas x processes is a multiple of num_generations exactly when mbs is a multiple of
    num_generations / gcd(num_generations, gas x processes), and mbs x gas >= num_generations
    from mbs = ceil(num_generations / gas) on."""
    if gradient_accumulation_steps < 1:
        return []  # mbs x gas >= num_generations never holds
    step = num_generations // math.gcd(num_generations, gradient_accumulation_steps * processes)
    least = max(1, -(-num_generations // gradient_accumulation_steps))
    first = -(-least // step) * step
    sizes = range(first, 4 * max(num_generations, 1) + 1, step)
    return list(sizes if limit < 1 else sizes[:limit])


def describe_layout(
    micro_batch_size: int,
    gradient_accumulation_steps: int,
    processes: int,
    num_generations: int,
    explicit_generation_batch: int | None = None,
) -> str:
    """The divisibility arithmetic in one line, e.g. `16 x 4 x 1 = 64 = 4 prompts x 16`."""
    if explicit_generation_batch:
        batch = explicit_generation_batch
        head = f"generation_batch_size {batch}"
    else:
        batch = generation_batch_size(micro_batch_size, gradient_accumulation_steps, processes)
        head = f"{micro_batch_size} x {gradient_accumulation_steps} x {processes} = {batch}"
    if batch % num_generations:
        return f"{head}, not divisible by {num_generations}"
    return f"{head} = {counted(batch // num_generations, 'prompt')} x {num_generations}"
