"""Each step's memory on a run without CUDA: `memory/rss_gib`, `memory/peak_rss_gib`,
`memory/available_gib` and `memory/headroom_share`.

Why: on a CPU machine the trainer, the vLLM-CPU server and everything else share one RAM, and the
kernel's OOM killer ends a run with SIGKILL: no traceback, nothing saved since the last checkpoint.
The Qwen 0.5B's GRPO trainer grew about 1 GiB a step until the kernel killed it at 17 GiB on a
24 GiB machine (docs/benchmarks.md, "The trainer's memory on CPU and glibc's mmap threshold").
Logged at each step's end: this process's resident size (VmRSS), its peak during the step (VmHWM,
reset at the step's start through /proc/self/clear_refs; the run's peak where that is refused), the
memory the machine has left (MemAvailable), and the share of the machine's memory that was left at
this process's peak in the step (available less what the peak held above the end), which the run
doctor's `memory_low` reads. Linux only: nothing is logged with CUDA (gpu_memory.py) or without
/proc. Measuring never stops training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any


LOG = logging.getLogger("axolotl_grpo_plugin")

RSS, PEAK, AVAILABLE, HEADROOM = ("memory/rss_gib", "memory/peak_rss_gib", "memory/available_gib",
                                  "memory/headroom_share")
KIB_PER_GIB = 1024**2
RESET_PEAK = "5"  # proc(5), clear_refs: "reset the peak resident set size (VmHWM)"


def read_kib(path: Path, *fields: str) -> dict[str, int]:
    """The `Field:   N kB` lines of a /proc file that `fields` name, in KiB, read in one pass (the
    file is regenerated at each read); a field the file lacks is absent from the result."""
    wanted, found = set(fields), {}
    with open(path, encoding="ascii", errors="replace") as handle:
        for line in handle:
            name, _, rest = line.partition(":")
            if name in wanted:
                found[name] = int(rest.split()[0])
                if len(found) == len(wanted):
                    break
    return found


def attach(trainer: Any, proc: Path = Path("/proc"),
           on_headroom: Callable[[float, int], None] | None = None) -> bool:
    """Log the step's memory on a run without CUDA; False (nothing attached) with CUDA or no /proc.
    `on_headroom(share, step)` is told each step's headroom share (training/release_memory.py)."""
    import torch

    if torch.cuda.is_available() or not (proc / "self" / "status").is_file() or not (proc / "meminfo").is_file():
        return False
    trainer.add_callback(make_callback(trainer, proc, on_headroom))
    return True


def make_callback(trainer: Any, proc: Path, on_headroom: Callable[[float, int], None] | None = None):
    """A TrainerCallback that resets the peak at each step's start and logs the four figures at
    its end. `proc`: /proc (a stand-in folder in tests)."""
    from transformers import TrainerCallback

    status, meminfo, clear_refs = proc / "self" / "status", proc / "meminfo", proc / "self" / "clear_refs"

    class CpuMemoryCallback(TrainerCallback):
        failed = False
        resets = True  # False once the kernel refuses the reset: the peak is then the run's

        def on_step_begin(self, args, state, control, **kwargs):
            if self.resets and not self.failed:
                try:
                    clear_refs.write_text(RESET_PEAK, encoding="ascii")
                except OSError:
                    self.resets = False

        def on_step_end(self, args, state, control, **kwargs):
            if not self.failed:
                try:
                    headroom = self._log()
                    if on_headroom is not None:
                        on_headroom(headroom, state.global_step)
                except Exception as exc:
                    self.failed = True
                    LOG.warning("axolotl_grpo_plugin: logging the trainer's memory failed (%s: %s); it is "
                                "off for the rest of the run.", type(exc).__name__, exc)

        def _log(self):
            process, machine = read_kib(status, "VmRSS", "VmHWM"), read_kib(meminfo, "MemAvailable", "MemTotal")
            if len(process) < 2 or len(machine) < 2 or not machine["MemTotal"]:
                raise ValueError(f"{status} or {meminfo} lacks VmRSS, VmHWM, MemAvailable or MemTotal")
            rss, peak = process["VmRSS"], process["VmHWM"]
            available, total = machine["MemAvailable"], machine["MemTotal"]
            metrics = trainer._metrics["train"]
            metrics[RSS].append(rss / KIB_PER_GIB)
            metrics[PEAK].append(peak / KIB_PER_GIB)
            metrics[AVAILABLE].append(available / KIB_PER_GIB)
            headroom = max(0, available - max(0, peak - rss)) / total
            metrics[HEADROOM].append(headroom)
            return headroom

    return CpuMemoryCallback()
