"""A yaml-declared remote reward as a TRL reward function: one value per completion, None for a
sample whose call finally failed (TRL leaves it out of that reward), never an exception.

Per batch: build one request per sample, answer what the cache holds, send the rest once each
(identical requests share a call), store the definite answers, then report through TRL's
keywords: `log_metric` (`remote/NAME/...`: latency, failures, cache hits, calls and tokens) and
`log_extra` (the column `remote/NAME` per sample, which the rollout log records).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from ..config.args import RemoteRewardSettings
from ..system.paths import user_path
from .cache import AnswerCache
from .calls import Answer, Caller
from .kinds import Request, Unusable, kind_of
from .spend import RunSpend, Spend


LOG = logging.getLogger("axolotl_grpo_plugin.rewards")
NOT_DATA = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric", "environments")
CACHE_FILE = "remote-rewards.sqlite"


def cache_path(spec: RemoteRewardSettings) -> Path | None:
    if spec.cache is False:
        return None
    if spec.cache is True:
        from ..system.paths import cache_dir

        return cache_dir() / CACHE_FILE
    return user_path(str(spec.cache))


class RemoteReward:
    """Callable as TRL calls rewards: `fn(prompts=..., completions=..., **columns)`.

    `ledger`: the run's spend ledger (a training run, ledger.py); None counts in this process."""

    def __init__(self, spec: RemoteRewardSettings, ledger: str | Path | None = None):
        self.spec = spec
        self.ledger = Path(ledger) if ledger is not None else None
        self.__name__ = spec.name
        self.__qualname__ = spec.name
        self.kind = kind_of(spec)
        spend = RunSpend(spec, self.ledger) if self.ledger is not None else Spend(spec)
        self.caller = Caller(spec, self.kind, spend)
        path = cache_path(spec)
        self.cache = AnswerCache(path) if path is not None else None
        self.totals = {"samples": 0, "cache_hits": 0, "failures": 0, "unscored": 0, "calls": 0, "tokens": 0}
        self._said: set[str] = set()

    def __repr__(self) -> str:
        return f"<remote reward {self.spec.name!r} ({self.spec.kind})>"

    def __call__(self, prompts: list, completions: list, **kwargs: Any) -> list[float | None]:
        n = len(completions) if isinstance(completions, (list, tuple)) else 0
        try:
            values, extra, metrics = self._score(prompts, completions, kwargs, n)
        except Exception as exc:  # noqa: BLE001 - the trainer never sees a remote failure
            self._say("crash", f"failed on a batch of {n} ({type(exc).__name__}: {str(exc)[:200]}); scored None")
            return [None] * n
        _report(kwargs, self.spec.name, extra, metrics)
        return values

    def _score(self, prompts: list, completions: list, kwargs: dict, n: int):
        start = time.monotonic()
        columns = {k: v for k, v in kwargs.items() if k not in NOT_DATA and not callable(v)}
        requests: list[Request | None] = []
        for i in range(n):
            sample = {k: (v[i] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in columns.items()}
            sample["prompt"] = prompts[i] if isinstance(prompts, (list, tuple)) and len(prompts) == n else None
            sample["completion"] = completions[i]
            try:
                requests.append(self.kind.request(sample))
            except Unusable as exc:
                self._say("request", f"cannot score sample {i}: {exc}; scored None")
                requests.append(None)
        keys = [r.key for r in requests if r is not None]
        cached = self.cache.get_many(keys) if self.cache is not None else {}
        todo: dict[str, Request] = {}
        for r in requests:
            if r is not None and r.key not in cached:
                todo.setdefault(r.key, r)
        answers = dict(zip(todo, self.caller.run_batch(list(todo.values()))))
        if self.cache is not None:
            self.cache.put_many({k: a.value for k, a in answers.items() if a.ok})
        values: list[float | None] = []
        extra: list[dict] = []
        failures = hits = unscored = 0
        for r in requests:
            if r is None:
                values.append(None)
                extra.append({"failed": "unusable sample"})
                failures += 1
            elif r.key in cached:
                values.append(cached[r.key])
                extra.append({"cached": True})
                hits += 1
            else:
                a: Answer = answers[r.key]
                values.append(a.value if a.ok else None)
                extra.append({"latency_ms": round(a.latency_s * 1000, 1), "calls": a.calls}
                             | ({"unscored": a.error} if a.unscored else {} if a.ok else {"failed": a.error}))
                if a.unscored:
                    unscored += 1
                    self._say("unscored", f"answered without a usable score ({a.error}); that sample "
                              "scored None (the answer is cached: change the template or score.regex)")
                elif not a.ok:
                    failures += 1
                    if not a.stopped:  # a spent budget is said once below
                        self._say("call", f"a call failed finally ({a.error}); that sample scored None")
        spend = self.caller.spend
        if spend.stopped:
            self._say("budget", f"stopped calling: {spend.stopped} {spend.where}; uncached samples now "
                      f"score None (TRL leaves them out). Fix: {spend.fix}",
                      level=logging.ERROR if getattr(spend, "unusable", None) else logging.WARNING)
        spent_calls, spent_tokens = spend.totals()
        called = list(answers.values())
        calls = sum(a.calls for a in called)
        tokens = sum(a.tokens for a in called)
        for key, value in (("samples", n), ("cache_hits", hits), ("failures", failures), ("unscored", unscored),
                           ("calls", calls), ("tokens", tokens)):
            self.totals[key] += value
        metrics = {
            "failures": float(failures),
            "unscored": float(unscored),
            "cache_hits": float(hits),
            "calls": float(calls),
            "tokens": float(tokens),
            "spent_calls": float(spent_calls),
            "spent_tokens": float(spent_tokens),
            "batch_s": time.monotonic() - start,
        }
        if called:
            metrics["latency_ms"] = 1000 * sum(a.latency_s for a in called) / len(called)
        return values, extra, metrics

    def _say(self, what: str, message: str, level: int = logging.WARNING) -> None:
        if what not in self._said:
            self._said.add(what)
            counter = "unscored" if what == "unscored" else "failures"
            LOG.log(level, "remote reward %r %s (said once; counted in remote/%s/%s)",
                    self.spec.name, message[:600], self.spec.name, counter)


def _report(kwargs: dict, name: str, extra: list[dict], metrics: dict[str, float]) -> None:
    """Through TRL's keywords (absent outside the trainer); a failing logger never fails scoring."""
    log_metric, log_extra = kwargs.get("log_metric"), kwargs.get("log_extra")
    try:
        if callable(log_metric):
            for key, value in metrics.items():
                log_metric(f"remote/{name}/{key}", value)
        if callable(log_extra):
            log_extra(f"remote/{name}", extra)
    except Exception:  # noqa: BLE001
        pass
