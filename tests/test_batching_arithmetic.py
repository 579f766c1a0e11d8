"""config/batching.py answers by arithmetic, the same as the scans it replaced, and at once for
absurd values (a `trl.num_generations: 1000000000000` used to hang `check`)."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from axolotl_grpo_plugin.config.batching import micro_batch_sizes_for, valid_num_generations


def scanned_micro_batch_sizes(num_generations, gradient_accumulation_steps, processes, limit=4):
    """The scan micro_batch_sizes_for was: every candidate up to 4 x num_generations."""
    found = []
    for mbs in range(1, 4 * max(num_generations, 1) + 1):
        batch = mbs * gradient_accumulation_steps * processes
        if batch % num_generations == 0 and mbs * gradient_accumulation_steps >= num_generations:
            found.append(mbs)
            if len(found) == limit:
                break
    return found


def scanned_num_generations(batch, limit=8, processes=1):
    top = batch // max(processes, 1)
    return sorted((g for g in range(2, top + 1) if batch % g == 0), reverse=True)[:limit]


@settings(max_examples=400, deadline=None)
@given(st.integers(1, 80), st.integers(-2, 12), st.integers(-2, 10), st.integers(-1, 6))
def test_micro_batch_sizes_match_the_scan(num_generations, gas, processes, limit):
    assert (micro_batch_sizes_for(num_generations, gas, processes, limit)
            == scanned_micro_batch_sizes(num_generations, gas, processes, limit))


@settings(max_examples=400, deadline=None)
@given(st.integers(-3, 2000), st.integers(0, 10), st.integers(-2, 10))
def test_valid_num_generations_match_the_scan(batch, limit, processes):
    assert valid_num_generations(batch, limit, processes) == scanned_num_generations(batch, limit, processes)


def test_absurd_values_answer_at_once():
    start = time.monotonic()
    assert micro_batch_sizes_for(10**12, 1, 1) == [10**12, 2 * 10**12, 3 * 10**12, 4 * 10**12]
    assert micro_batch_sizes_for(10**12 + 39, 4, 3) == [(10**12 + 39) * k for k in (1, 2, 3, 4)]  # coprime
    assert valid_num_generations(10**12 * 4, processes=1)[0] == 4 * 10**12
    assert valid_num_generations(2**61 - 1) == [2**61 - 1]  # a prime: its own only divisor >= 2
    assert time.monotonic() - start < 2
