"""`grpo_plugin.cpu_release_memory`: make glibc hand freed memory back to the system on a CPU run.

Why: glibc raises its mmap threshold each time it frees a large block, so later blocks of that size
come from the heap, and a heap block stays resident after it is freed. The Qwen 0.5B's GRPO trainer
grew about 1 GiB a step that way until the kernel's OOM killer ended the run with SIGKILL. A fixed
threshold of 64 KiB (what `MALLOC_MMAP_THRESHOLD_=65536` sets) stopped the growth and lowered the
peak 2.7 GiB, for 1.26x (a bench loop) to 1.36x (a real run) the forward, backward and optimizer
time (docs/benchmarks.md, "The trainer's memory on CPU and glibc's mmap threshold"). So `auto`
pays that only once a step has left AUTO_AT_HEADROOM of the machine's memory or less
(`memory/headroom_share`, observe/cpu_memory.py), and then also hands back what is free already
(`malloc_trim`). `true`: from the start; `false`: never. An exported MALLOC_MMAP_THRESHOLD_ is the
user's choice and is kept. Ignored with CUDA (the trainer's host memory is then small).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping
from typing import Any, Literal


LOG = logging.getLogger("axolotl_grpo_plugin")

M_MMAP_THRESHOLD = -3  # malloc.h
THRESHOLD_BYTES = 64 * 1024
AUTO_AT_HEADROOM = 0.25  # above the run doctor's memory_low (0.1): acts before the doctor warns
ENV = "MALLOC_MMAP_THRESHOLD_"
KEY = "grpo_plugin.cpu_release_memory"


def glibc() -> Any | None:
    """The C library when it is glibc (mallopt and malloc_trim are glibc's), else None."""
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version, libc.mallopt, libc.malloc_trim  # noqa: B018 (absent: AttributeError)
    except (OSError, AttributeError):
        return None
    return libc


def release(libc: Any) -> bool:
    """Fix glibc's mmap threshold at THRESHOLD_BYTES (which also stops its dynamic raising) and
    give back the free memory glibc holds now; True when glibc took the setting."""
    if libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD_BYTES) != 1:
        return False
    libc.malloc_trim(0)
    return True


class Policy:
    """What `cpu_release_memory` does on this run: `start()` once the trainer exists, and
    `on_headroom(share, step)` after each step's memory is read."""

    def __init__(self, setting: bool | Literal["auto"], libc: Any | None = None,
                 environ: Mapping[str, str] = os.environ):
        self.setting, self.libc, self.environ = setting, libc, environ
        self.on = False

    def start(self) -> None:
        if self.setting is True and not self._users_own():
            self._apply(f"{KEY}: true")

    def on_headroom(self, share: float, step: int) -> None:
        if self.setting == "auto" and not self.on and share <= AUTO_AT_HEADROOM and not self._users_own():
            self._apply(f"{share:.0%} of the machine's memory was left at the trainer's peak in step {step} "
                        f"({KEY}: auto acts at {AUTO_AT_HEADROOM:.0%})")

    def _users_own(self) -> bool:
        return ENV in self.environ

    def _apply(self, why: str) -> None:
        self.on = True  # once, whatever the outcome: never retried or repeated each step
        libc = self.libc if self.libc is not None else glibc()
        if libc is None or not release(libc):
            LOG.warning("axolotl_grpo_plugin: %s, but this C library is not glibc (or refused mallopt): freed "
                        "memory is not handed back; train fewer tokens at once if the machine runs short.", why)
            return
        LOG.warning("axolotl_grpo_plugin: %s: from now on glibc hands each freed block of %d KiB or more back to "
                    "the system (as `export %s=%d` does), which stops the trainer's memory from growing; its "
                    "forward, backward and optimizer take about 1.3x as long (docs/observe.md). `%s: false` turns "
                    "this off.", why, THRESHOLD_BYTES // 1024, ENV, THRESHOLD_BYTES, KEY)
