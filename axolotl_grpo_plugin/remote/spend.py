"""One reward's spend against its budgets: `reserve` before each call, `add_tokens` after it.

`Spend` counts in this process: what a reward uses when no run is known (`axolotl-grpo score`,
a reward called from Python). `RunSpend` counts in the run's ledger (ledger.py), shared by every
process of a training run and continued by a resumed one. Neither raises: a spent budget, or a
ledger that cannot be used, sets `stopped` (why) and `fix` (what to do), and calls stop.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..config.args import RemoteRewardSettings
from .ledger import Ledger, LedgerError


LOG = logging.getLogger("axolotl_grpo_plugin.rewards")


class Spend:
    """Calls and tokens spent by one reward in this process, against its budgets."""

    blocking = False  # reserve/add_tokens touch no file: called on the event loop itself
    where = "in this process"

    def __init__(self, spec: RemoteRewardSettings):
        self.name = spec.name
        self.budget_calls, self.budget_tokens = spec.budget_calls, spec.budget_tokens
        self.calls = 0   # made by this process
        self.tokens = 0
        self.stopped: str | None = None
        self.fix = (f"raise the budget (budget_calls / budget_tokens) under grpo_plugin.remote_rewards "
                    f"(name: {spec.name}), or remove the limit")

    def reserve(self) -> bool:
        """Count one call about to be made; False (and `stopped` set) when a budget is spent."""
        if self.stopped is None:
            self.stopped = self._refused()
        if self.stopped is not None:
            return False
        self.calls += 1
        return True

    def _refused(self) -> str | None:
        if self.budget_calls is not None and self.calls >= self.budget_calls:
            return f"budget_calls={self.budget_calls} spent"
        if self.budget_tokens is not None and self.tokens >= self.budget_tokens:
            return f"budget_tokens={self.budget_tokens} spent ({self.tokens} tokens)"
        return None

    def add_tokens(self, tokens: int) -> None:
        self.tokens += tokens

    def totals(self) -> tuple[int, int]:
        """(calls, tokens) against the budgets: this process's here, the run's in RunSpend."""
        return self.calls, self.tokens


class RunSpend(Spend):
    """The run's spend, in its ledger: every process of the run reserves from the same budget."""

    blocking = True  # a file lock may wait: called off the event loop

    def __init__(self, spec: RemoteRewardSettings, ledger_path: str | Path):
        super().__init__(spec)
        self.ledger = Ledger(ledger_path)
        self.where = f"in this run (the spend ledger {self.ledger.path})"
        self.fix = (f"raise the budget (budget_calls / budget_tokens) under grpo_plugin.remote_rewards "
                    f"(name: {spec.name}) and resume the run (it continues this spend), or remove the limit")
        self.unusable: LedgerError | None = None
        self._offset = (0, 0)  # the run's totals minus this process's, when last read
        self._lock = threading.Lock()

    def reserve(self) -> bool:
        with self._lock:  # several threads reserve at once (asyncio.to_thread)
            if self.stopped is None and self.unusable is None:
                try:
                    self.stopped = self.ledger.reserve(self.name, self.budget_calls, self.budget_tokens)
                except LedgerError as exc:
                    self._broken(exc)
            if self.stopped is not None:
                return False
            self.calls += 1
            return True

    def add_tokens(self, tokens: int) -> None:
        with self._lock:
            self.tokens += tokens
            if self.unusable is None and tokens > 0:
                try:
                    self.ledger.add_tokens(self.name, tokens)
                except LedgerError as exc:
                    self._broken(exc)

    def totals(self) -> tuple[int, int]:
        with self._lock:
            if self.unusable is None:
                try:
                    calls, tokens = self.ledger.totals(self.name)
                    self._offset = (calls - self.calls, tokens - self.tokens)
                except LedgerError as exc:
                    self._broken(exc)
            return self.calls + self._offset[0], self.tokens + self._offset[1]

    def _broken(self, exc: LedgerError) -> None:
        """A ledger that stops working mid-run. With a budget the run no longer knows what it has
        spent: calls stop, as for a spent budget. Without one the ledger only counted: go on."""
        self.unusable = exc
        problem = exc.problems[0]
        if self.budget_calls is None and self.budget_tokens is None:
            LOG.warning("remote reward %r: %s Its spend is counted in this process from now on. "
                        "Fix: %s", self.name, problem.message, problem.fix)
        else:
            self.stopped, self.fix = problem.message.rstrip("."), problem.fix
