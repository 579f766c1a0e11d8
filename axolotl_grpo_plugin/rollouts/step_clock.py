"""The step clock: exclusive seconds per part of one training step, cheap enough for every call.

Why exclusive: in TRL the weight push runs inside generation's call path, and generation and
scoring run inside `training_step`; timing each call whole would count the push twice.
Entering a part pauses the part it runs in, so each second of the step goes to one part at
most, and what no part claims is the rest (`other`, never negative). Only the thread that
built the clock (the training loop's) is timed: a call from another thread (a background
generator) runs untimed, since the step does not wait for it there.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable


PARTS = ("generation", "rewards", "weight_sync", "optimizer")
OTHER, STEP = "other", "step"


class StepClock:
    """`enter(part)`/`leave()` (or `timed(part, fn)`) during a step, `end_step()` at its end."""

    def __init__(self, now: Callable[[], float] = time.perf_counter):
        self._now = now
        self._thread = threading.get_ident()
        self._stack: list[str] = []
        self._mark = 0.0  # when the innermost open part last started counting
        self.restart()

    def restart(self) -> None:
        """Start a fresh step now (train begin); open parts keep counting from here."""
        self.seconds = dict.fromkeys((*PARTS, OTHER), 0.0)
        self._start = self._mark = self._now()

    def enter(self, part: str) -> bool:
        """Pause the enclosing part and start `part`; False (and nothing timed) off the loop's thread."""
        if threading.get_ident() != self._thread:
            return False
        now = self._now()
        if self._stack:
            self.seconds[self._stack[-1]] += now - self._mark
        self._stack.append(part)
        self._mark = now
        return True

    def leave(self) -> None:
        """Stop the innermost part; the enclosing one counts again."""
        now = self._now()
        self.seconds[self._stack.pop()] += now - self._mark
        self._mark = now

    def timed(self, part: str, fn: Callable) -> Callable:
        """`fn` with each of its calls counted as `part` (exclusive of parts nested inside)."""
        @functools.wraps(fn)
        def timed_call(*args, **kwargs):
            if not self.enter(part):
                return fn(*args, **kwargs)
            try:
                return fn(*args, **kwargs)
            finally:
                self.leave()

        timed_call.step_clock_part = part
        return timed_call

    def end_step(self) -> dict[str, float]:
        """This step's seconds: each part, `other` (explicit plus unclaimed) and `step` (since the
        previous end or restart); the next step starts now."""
        now = self._now()
        if self._stack:  # a part still open: its time so far belongs to this step
            self.seconds[self._stack[-1]] += now - self._mark
            self._mark = now
        out = self.seconds
        step = now - self._start
        out[OTHER] += max(0.0, step - sum(out.values()))
        out[STEP] = step
        self.seconds = dict.fromkeys((*PARTS, OTHER), 0.0)
        self._start = now
        return out


# each part's key in the Trainer's logs: the step_time record, the doctor, the report, gpu-check
METRICS = {part: f"time/{part}" for part in (*PARTS, OTHER, STEP)}

# step-time part -> (signature, verdict, what the step does meanwhile); fires at >= BOUND_SHARE
BOUND_SHARE = 0.5
BOUND = {
    "generation": ("generation_bound", "generation-bound", "waits for generation"),
    "weight_sync": ("push_bound", "push-bound", "pushes weights to vLLM"),
    "rewards": ("reward_bound", "reward-bound", "scores rewards"),
    "optimizer": ("optimizer_bound", "optimizer-bound", "runs forward, backward and the optimizer step"),
}
ADVISORY = {signature for signature, _, _ in BOUND.values()}  # never stop a run
