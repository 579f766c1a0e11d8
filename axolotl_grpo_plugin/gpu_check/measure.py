"""Run one case's `axolotl train` and read what it measured from its log.

The run is a child in its own process group, so a timeout or a Ctrl-C takes down every
process it started (accelerate's worker included) and nothing stays on the GPU. Per step, the
plugin logs `memory/peak_*_gib` (observe/gpu_memory.py), the `time/*` breakdown
(observe/step_time.py) and TRL's cumulative `num_tokens`; the Trainer prints each step's logs,
which the demo's parser reads (never eval'd).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..demo.curves import parse_log_lines
from ..observe.gpu_memory import ALLOCATED, RESERVED
from ..rollouts.step_clock import METRICS as TIME_METRICS


OOM = re.compile(r"(CUDA out of memory|OutOfMemoryError)[^\n]*")
TOKENS, COMPLETION_LENGTH = "num_tokens", "completions/mean_length"
STOP_GRACE_S = 10


class StopRequested(Exception):
    """SIGTERM or Ctrl-C reached the check (the command's signal handler raises it)."""

    def __init__(self, signal_name: str):
        super().__init__(signal_name)
        self.signal_name = signal_name


@dataclass
class TrainRun:
    returncode: int | None  # None: stopped at the timeout or by `stopped_by`
    seconds: float
    steps: list[dict]
    log: Path
    smi_peak_gib: float | None = None
    oom: str | None = None
    tail: list[str] = field(default_factory=list)
    stopped_by: str | None = None  # SIGTERM or SIGINT: the check was stopped while this ran


def train_command(config: Path) -> list[str]:
    """`axolotl train CONFIG`, with this interpreter (the wheelhouse is on its PYTHONPATH)."""
    return [sys.executable, "-m", "axolotl.cli.main", "train", str(config)]


def child_env(offline: bool) -> dict[str, str]:
    env = dict(os.environ, AXOLOTL_DO_NOT_TRACK="1", WANDB_MODE="disabled", PYTHONUNBUFFERED="1",
               TOKENIZERS_PARALLELISM="false")
    # accelerate, which `axolotl train` starts, is found on PATH beside this interpreter
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    if offline:  # a model built here: nothing to fetch, and no network on the lent machine
        env |= {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    return env


def run_train(config: Path, log: Path, timeout_s: float, offline: bool, sample_smi=None) -> TrainRun:
    """Run `axolotl train CONFIG` into LOG for at most TIMEOUT_S; always reaps its process group.
    `sample_smi`: a function returning the GPU's used GiB (nvidia-smi), polled while it runs."""
    started = time.monotonic()
    peak = Sampler(sample_smi) if sample_smi else None
    stopped_by = None
    with open(log, "w", encoding="utf-8") as out:
        child = subprocess.Popen(train_command(config), stdout=out, stderr=subprocess.STDOUT,
                                 env=child_env(offline), start_new_session=True)
        try:
            if peak:
                peak.start()
            returncode = child.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            returncode = None
        except StopRequested as stop:  # the steps logged so far are still read below
            returncode, stopped_by = None, stop.signal_name
        finally:
            stop_group(child)
            if peak:
                peak.stop()
    text = log.read_text(encoding="utf-8", errors="replace")
    oom = OOM.search(text)
    return TrainRun(returncode=returncode, seconds=time.monotonic() - started, steps=parse_log_lines(text),
                    log=log, smi_peak_gib=peak.peak if peak else None, oom=oom.group(0) if oom else None,
                    tail=text.splitlines()[-15:], stopped_by=stopped_by)


def stop_group(child: subprocess.Popen) -> None:
    """SIGTERM the child's process group, SIGKILL what is left after a grace period."""
    for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5)):
        try:
            os.killpg(child.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                os.killpg(child.pid, 0)
            except ProcessLookupError:
                child.poll()
                return
            time.sleep(0.2)
    child.poll()


class Sampler:
    """Polls a reading (GiB) once a second in a thread and keeps its maximum."""

    def __init__(self, read, interval_s: float = 1.0):
        self.read, self.interval_s, self.peak = read, interval_s, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self):
        while not self._stop.is_set():
            value = self.read()
            if value is not None:
                self.peak = value if self.peak is None else max(self.peak, value)
            self._stop.wait(self.interval_s)


def summarize(steps: list[dict]) -> dict:
    """Peak memory over every step; time parts and tokens per second over the steps after the
    first (which includes one-time work: allocator growth, kernel selection)."""
    def peak(key):
        values = [s[key] for s in steps if key in s]
        return round(max(values), 3) if values else None

    steady = steps[1:] if len(steps) > 1 else steps
    parts = {part: round(mean(s[key] for s in steady if key in s), 3)
             for part, key in TIME_METRICS.items() if any(key in s for s in steady)}
    tokens_per_s = None
    if len(steps) > 1 and all(TOKENS in s for s in steps) and parts.get("step"):
        counted = steps[-1][TOKENS] - steps[0][TOKENS]
        tokens_per_s = round(counted / (parts["step"] * len(steady)), 1) if counted > 0 else None
    return {"steps": len(steps), "peak_allocated_gib": peak(ALLOCATED), "peak_reserved_gib": peak(RESERVED),
            "per_step_peak_allocated_gib": [round(s[ALLOCATED], 3) for s in steps if ALLOCATED in s],
            "tokens_per_s": tokens_per_s, "step_parts": parts or None,
            "completion_mean_tokens": round(mean(s[COMPLETION_LENGTH] for s in steps if COMPLETION_LENGTH in s), 1)}


def mean(values) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
