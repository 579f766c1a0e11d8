"""`grpo_plugin.cpu_release_memory` (training/release_memory.py): when glibc is told to hand freed
memory back, and that telling it does hand back memory a raised mmap threshold had kept."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from axolotl_grpo_plugin.observe import cpu_memory
from axolotl_grpo_plugin.training import release_memory
from axolotl_grpo_plugin.training.release_memory import (
    AUTO_AT_HEADROOM,
    ENV,
    M_MMAP_THRESHOLD,
    THRESHOLD_BYTES,
    Policy,
)


class FakeLibc:
    def __init__(self, accepts=True):
        self.calls, self.accepts = [], accepts

    def mallopt(self, option, value):
        self.calls.append(("mallopt", option, value))
        return 1 if self.accepts else 0

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


SET = [("mallopt", M_MMAP_THRESHOLD, THRESHOLD_BYTES), ("malloc_trim", 0)]


def test_auto_acts_once_at_the_first_step_at_or_below_its_headroom(caplog):
    libc = FakeLibc()
    policy = Policy("auto", libc, environ={})
    policy.start()
    policy.on_headroom(AUTO_AT_HEADROOM + 0.01, 1)
    assert libc.calls == [] and not policy.on
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        policy.on_headroom(AUTO_AT_HEADROOM, 2)
        policy.on_headroom(0.05, 3)  # once: not again each step
    assert libc.calls == SET and policy.on
    (line,) = [r.getMessage() for r in caplog.records]
    assert "in step 2" in line and "grpo_plugin.cpu_release_memory: auto" in line and "false" in line


def test_true_acts_at_the_start_and_false_never():
    libc = FakeLibc()
    policy = Policy(True, libc, environ={})
    policy.start()
    policy.on_headroom(0.01, 1)
    assert libc.calls == SET
    libc = FakeLibc()
    policy = Policy(False, libc, environ={})
    policy.start()
    policy.on_headroom(0.01, 1)
    assert libc.calls == [] and not policy.on


@pytest.mark.parametrize("setting", ["auto", True])
def test_an_exported_threshold_is_the_users_and_kept(setting):
    libc = FakeLibc()
    policy = Policy(setting, libc, environ={ENV: "1048576"})
    policy.start()
    policy.on_headroom(0.01, 1)
    assert libc.calls == [] and not policy.on


def test_a_library_that_refuses_is_said_once_and_not_retried(caplog):
    libc = FakeLibc(accepts=False)
    policy = Policy("auto", libc, environ={})
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        policy.on_headroom(0.1, 4)
        policy.on_headroom(0.1, 5)
    assert libc.calls == [("mallopt", M_MMAP_THRESHOLD, THRESHOLD_BYTES)]
    (line,) = [r.getMessage() for r in caplog.records]
    assert "not glibc" in line and "fewer tokens" in line


def test_the_memory_callback_hands_each_steps_headroom_and_step_to_the_policy(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("VmHWM:\t8388608 kB\nVmRSS:\t4194304 kB\n")  # peak 8, now 4 GiB
    (tmp_path / "meminfo").write_text("MemTotal:\t16777216 kB\nMemAvailable:\t8388608 kB\n")  # 16, 8 GiB left
    trainer = SimpleNamespace(_metrics={"train": defaultdict(list)}, callbacks=[])
    trainer.add_callback = trainer.callbacks.append
    libc = FakeLibc()
    policy = Policy("auto", libc, environ={})
    assert cpu_memory.attach(trainer, tmp_path, on_headroom=policy.on_headroom)
    (callback,) = trainer.callbacks
    callback.on_step_begin(None, SimpleNamespace(global_step=6), None)
    callback.on_step_end(None, SimpleNamespace(global_step=7), None)
    # 8 GiB left now, 4 of them taken at the peak: 4 of 16 = 25 % at the peak
    assert trainer._metrics["train"][cpu_memory.HEADROOM] == [pytest.approx(0.25)]
    assert libc.calls == SET


FRAGMENT = textwrap.dedent("""
    import ctypes, sys
    from axolotl_grpo_plugin.observe.cpu_memory import read_kib
    from axolotl_grpo_plugin.training import release_memory
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes, libc.memset.argtypes = [ctypes.c_void_p], [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    MiB = 1 << 20
    def resident():
        return read_kib("/proc/self/status", "VmRSS")["VmRSS"] // 1024
    def touched(size):
        block = libc.malloc(size)
        libc.memset(block, 1, size)
        return block
    libc.free(touched(16 * MiB))  # freeing an mmapped 16 MiB block raises glibc's threshold to 16 MiB
    before = resident()
    blocks = [(touched(4 * MiB), touched(256 * 1024)) for _ in range(40)]  # 4 MiB now from the heap,
    for big, _ in blocks:                                                    # each pinned by a small one
        libc.free(big)
    kept = resident() - before
    if sys.argv[1] == "release":
        assert release_memory.release(release_memory.glibc())
    print(kept, resident() - before)
""")


@pytest.mark.skipif(release_memory.glibc() is None or not sys.platform.startswith("linux"),
                    reason="needs glibc and /proc")
def test_release_hands_back_what_a_raised_threshold_kept():
    def run(mode):
        proc = subprocess.run([sys.executable, "-c", FRAGMENT, mode], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return [int(mib) for mib in proc.stdout.split()]

    kept, after = run("keep")
    assert kept >= 150 and after >= 150  # 40 freed 4 MiB blocks stay resident: the growth the runs saw
    kept, after = run("release")
    assert kept >= 150 and after <= 20  # handed back at once (malloc_trim), not only future blocks
