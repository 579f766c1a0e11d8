"""GRPO batch arithmetic: the rule users trip over most, with valid alternatives.

TRL groups completions by prompt, so `num_generations` must divide the generation
batch, which by default is micro_batch_size x gradient_accumulation_steps x
training processes (one generation batch per optimizer step).
"""

from __future__ import annotations

from ..errors import counted


def generation_batch_size(
    micro_batch_size: int, gradient_accumulation_steps: int, processes: int
) -> int:
    return micro_batch_size * gradient_accumulation_steps * processes


def valid_num_generations(batch: int, limit: int = 8, processes: int = 1) -> list[int]:
    """Group sizes (>= 2) that divide `batch` with a whole group per process, largest first:
    bigger groups, better baselines."""
    top = batch // max(processes, 1)
    return sorted((g for g in range(2, top + 1) if batch % g == 0), reverse=True)[:limit]


def micro_batch_sizes_for(
    num_generations: int, gradient_accumulation_steps: int, processes: int, limit: int = 4
) -> list[int]:
    """The smallest micro_batch_size values that make `num_generations` divide the batch
    and give every process at least one whole group (Axolotl 0.19's extra rule)."""
    found: list[int] = []
    for mbs in range(1, 4 * max(num_generations, 1) + 1):
        batch = generation_batch_size(mbs, gradient_accumulation_steps, processes)
        if batch % num_generations == 0 and mbs * gradient_accumulation_steps >= num_generations:
            found.append(mbs)
            if len(found) == limit:
                break
    return found


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
