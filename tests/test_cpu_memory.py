"""The trainer's memory on a run without CUDA (observe/cpu_memory.py) and the doctor's `memory_low`."""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import pytest
import torch

from axolotl_grpo_plugin.config.args import DoctorSettings
from axolotl_grpo_plugin.observe import cpu_memory
from axolotl_grpo_plugin.observe.cpu_memory import AVAILABLE, HEADROOM, PEAK, RSS
from axolotl_grpo_plugin.observe.doctor import Doctor


GIB_KIB = 1024**2


class Trainer:
    def __init__(self):
        self._metrics = {"train": defaultdict(list)}
        self.callbacks = []

    def add_callback(self, callback):
        self.callbacks.append(callback)


def fake_proc(root: Path, rss_gib: float, peak_gib: float, available_gib: float, total_gib: float = 16) -> Path:
    (root / "self").mkdir(parents=True, exist_ok=True)
    (root / "self" / "status").write_text(f"Name:\tpython\nVmHWM:\t{int(peak_gib * GIB_KIB)} kB\n"
                                          f"VmRSS:\t{int(rss_gib * GIB_KIB)} kB\nThreads:\t4\n")
    (root / "meminfo").write_text(f"MemTotal:       {int(total_gib * GIB_KIB)} kB\n"
                                  f"MemFree:        1024 kB\nMemAvailable:   {int(available_gib * GIB_KIB)} kB\n")
    return root


def step(callback, between=lambda: None):
    callback.on_step_begin(None, None, None)
    between()
    callback.on_step_end(None, None, None)


@pytest.fixture
def no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_each_step_logs_resident_peak_available_and_the_headroom_at_the_peak(tmp_path, no_cuda):
    proc = fake_proc(tmp_path, rss_gib=2, peak_gib=5, available_gib=4)
    trainer = Trainer()
    assert cpu_memory.attach(trainer, proc)
    (callback,) = trainer.callbacks
    step(callback)
    assert (proc / "self" / "clear_refs").read_text() == cpu_memory.RESET_PEAK  # the peak is the step's
    metrics = trainer._metrics["train"]
    assert metrics[RSS] == [2] and metrics[PEAK] == [5] and metrics[AVAILABLE] == [4]
    # at the peak the process held 3 GiB more than at the end, out of the 4 the machine has now
    assert metrics[HEADROOM] == [pytest.approx(1 / 16)]


def test_a_refused_peak_reset_keeps_logging_and_a_broken_status_turns_it_off_once(tmp_path, no_cuda, caplog):
    proc = fake_proc(tmp_path, rss_gib=2, peak_gib=2, available_gib=10)
    (proc / "self" / "clear_refs").mkdir()  # writing it raises IsADirectoryError, as a refusing kernel would
    trainer = Trainer()
    cpu_memory.attach(trainer, proc)
    (callback,) = trainer.callbacks
    step(callback)
    assert callback.resets is False and trainer._metrics["train"][HEADROOM] == [pytest.approx(10 / 16)]
    (proc / "self" / "status").write_text("Name:\tpython\n")
    step(callback)
    step(callback)
    assert callback.failed and len(trainer._metrics["train"][RSS]) == 1
    assert [r.message for r in caplog.records].count(caplog.records[-1].message) == 1
    assert "logging the trainer's memory failed" in caplog.records[-1].message


def test_nothing_is_attached_with_cuda_or_without_proc(tmp_path, monkeypatch):
    proc = fake_proc(tmp_path, 1, 1, 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert not cpu_memory.attach(Trainer(), proc)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert not cpu_memory.attach(Trainer(), tmp_path / "elsewhere")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_on_this_machine_the_peak_is_each_steps_own(no_cuda):
    """Step 1 touches 512 MiB and frees it; step 2 does nothing: its peak must not carry step 1's."""
    trainer = Trainer()
    assert cpu_memory.attach(trainer)
    (callback,) = trainer.callbacks

    def touch():
        block = torch.ones(512 * 2**20 // 4)  # float32: 512 MiB, written
        assert block[-1] == 1

    step(callback, touch)
    step(callback)
    metrics = trainer._metrics["train"]
    if callback.resets:
        assert metrics[PEAK][0] - metrics[RSS][0] >= 0.45
        assert metrics[PEAK][1] - metrics[RSS][1] < 0.2
    else:  # a kernel that refuses the reset: the run's peak, never below the step's resident size
        assert metrics[PEAK][1] >= metrics[PEAK][0] - 0.01
    assert all(0 <= share <= 1 for share in metrics[HEADROOM])


def _steps(headrooms: list[float | None]) -> list[dict]:
    logs = []
    for share in headrooms:
        entry = {"grad_norm": 1.0, "loss": 0.1}
        if share is not None:
            entry |= {HEADROOM: share, PEAK: 15.0, RSS: 13.0}
        logs.append(entry)
    return logs


def test_memory_low_fires_once_at_the_first_step_at_or_below_the_share():
    doctor = Doctor(DoctorSettings())
    fired = [(i, f) for i, entry in enumerate(_steps([0.3, 0.15, 0.1, 0.05, 0.02])) for f in doctor.observe(entry, i + 1)]
    assert [(i, f.signature) for i, f in fired] == [(2, "memory_low")]
    message = fired[0][1].message
    assert "cpu_release_memory: false" in message and "memory/headroom_share 0.1" in message
    assert "this logging step" in message  # the first such step, not 3 in a row
    doctor = Doctor(DoctorSettings(memory_low=0.2))
    assert [f.signature for e in _steps([0.3, 0.15]) for f in doctor.observe(e)] == ["memory_low"]


def test_memory_low_is_skipped_when_not_logged_and_quiet_with_room():
    doctor = Doctor(DoctorSettings())
    assert [f for e in _steps([None, None, 0.5, 0.11, 0.4]) for f in doctor.observe(e)] == []
