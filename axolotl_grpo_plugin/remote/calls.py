"""Concurrent remote calls from synchronous code: one asyncio loop per process on a daemon
thread (TRL calls rewards from its own thread, sometimes one that already runs a loop), httpx
for the HTTP, a semaphore per reward for the concurrency bound.

Every attempt is bounded by `timeout_s` as a whole (asyncio.wait_for around connect, send and
read: httpx's own timeouts are per read, so a server that drips bytes would outlive them);
timeouts, dropped connections, 429 and 5xx are retried with exponential backoff (Retry-After
honoured, capped); anything else ends the sample. So a sample takes at most `deadline_s(spec)`.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import threading
import time
from dataclasses import dataclass, replace

import httpx

from ..config.args import RemoteRewardSettings
from .kinds import Kind, Request, Unusable
from .spend import Spend


BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 4.0
RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def backoff_s(attempt: int, retry_after: float | None, timeout_s: float) -> float:
    """Seconds before retry number `attempt` (0-based): exponential with jitter, or the server's
    Retry-After, never more than BACKOFF_CAP_S (nor the call's own timeout)."""
    wait = BACKOFF_BASE_S * 2 ** attempt * (0.5 + random.random() / 2)
    if retry_after is not None:
        wait = max(wait, retry_after)
    return min(wait, BACKOFF_CAP_S, timeout_s)


def deadline_s(spec: RemoteRewardSettings) -> float:
    """The longest one sample can take: every attempt timing out, plus the longest backoffs."""
    return (spec.retries + 1) * spec.timeout_s + spec.retries * min(BACKOFF_CAP_S, spec.timeout_s)


GUARD_SLACK_S = 60.0


def batch_guard_s(spec: RemoteRewardSettings, n: int) -> float:
    """How long a batch of n samples may take before its loop is taken for stuck: every wave of
    `concurrency` samples at its deadline, plus wide slack."""
    waves = -(-n // spec.concurrency)
    return waves * deadline_s(spec) + GUARD_SLACK_S


@dataclass
class Answer:
    value: float | None = None
    ok: bool = False          # a definite answer (its value may be None: "not applicable")
    error: str | None = None  # why not, for the log (never holds a header)
    unscored: bool = False    # ok, but the answer held no usable score (a judge off its rubric): None
    latency_s: float = 0.0
    calls: int = 0
    tokens: int = 0
    done: bool = False        # every attempt it was going to make has ended
    stopped: bool = False     # not (or no more) called: the budget is spent (reward.py says it once)


class Caller:
    """One reward's HTTP client, concurrency bound and spend, living on the process's loop."""

    def __init__(self, spec: RemoteRewardSettings, kind: Kind, spend: Spend | None = None):
        self.spec, self.kind = spec, kind
        self.spend = spend if spend is not None else Spend(spec)
        self._client: httpx.AsyncClient | None = None
        self._semaphore: asyncio.Semaphore | None = None
        self._pid = -1

    def run_batch(self, requests: list[Request]) -> list[Answer]:
        """Answer every request (concurrently, at most `concurrency` in flight); never raises.

        Each call bounds itself; the guard here is for a loop that stops running (a blocked
        thread), so its slack is wide: a loaded machine must not turn slow calls into failures.
        Past it, the answers so far stand and the rest fail, with the calls they made counted."""
        if not requests:
            return []
        answers = [Answer() for _ in requests]
        future = asyncio.run_coroutine_threadsafe(self._batch(requests, answers), process_loop())
        try:
            future.result(timeout=batch_guard_s(self.spec, len(requests)))
        except Exception as exc:  # noqa: BLE001 - a stuck loop must not stall training
            future.cancel()
            answers = [replace(a) for a in answers]  # the loop may still touch the originals
            why = f"the batch did not finish within {batch_guard_s(self.spec, len(requests)):g} s ({type(exc).__name__})"
            for answer in answers:
                if not answer.done:
                    answer.ok, answer.value, answer.error = False, None, why
        return answers

    async def _batch(self, requests: list[Request], answers: list[Answer]) -> None:
        if self._client is None or self._pid != os.getpid():
            # No keep-alive: 64 judge calls reusing the previous batch's connections to vLLM's server took
            # 5-40 s where fresh connections took 1.85 s, with a dropped connection now and then
            # (bench/bench_remote_judge.py, docs/benchmarks.md); a new local connection costs ~1 ms.
            limits = httpx.Limits(max_connections=self.spec.concurrency, max_keepalive_connections=0)
            self._client = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(self.spec.timeout_s),
                                             trust_env=False, follow_redirects=False)
            self._semaphore = asyncio.Semaphore(self.spec.concurrency)
            self._pid = os.getpid()
        await asyncio.gather(*(self._bounded(r, a) for r, a in zip(requests, answers)))

    async def _bounded(self, request: Request, answer: Answer) -> None:
        async with self._semaphore:
            start = time.monotonic()
            await self._with_retries(request, answer)
            answer.latency_s = time.monotonic() - start
            answer.done = True

    async def _with_retries(self, request: Request, answer: Answer) -> Answer:
        for attempt in range(self.spec.retries + 1):
            if not await self._spent(self.spend.reserve):  # reserved before the call is sent
                answer.error, answer.stopped = self.spend.stopped, True
                return answer
            answer.calls += 1
            retry_after: float | None = None
            try:
                response = await asyncio.wait_for(
                    self._client.post(request.url, json=request.body, headers=request.headers),
                    self.spec.timeout_s)
            except (TimeoutError, httpx.TimeoutException):
                answer.error = f"no answer within timeout_s={self.spec.timeout_s:g}"
            except httpx.HTTPError as exc:  # refused, dropped, protocol errors: transient
                answer.error = f"{type(exc).__name__}"
            else:
                if response.status_code in RETRY_STATUS:
                    answer.error = f"HTTP {response.status_code}"
                    retry_after = _seconds(response.headers.get("retry-after"))
                elif response.status_code >= 400:
                    answer.error = f"HTTP {response.status_code}: {response.text[:120]!r}"
                    return answer
                else:
                    self._parsed(response, answer)
                    if answer.tokens:
                        await self._spent(self.spend.add_tokens, answer.tokens)
                    return answer
            if attempt < self.spec.retries:
                await asyncio.sleep(backoff_s(attempt, retry_after, self.spec.timeout_s))
        return answer

    async def _spent(self, work, *args):
        """The spend's bookkeeping: a ledger's file lock may wait, so off the loop."""
        return await asyncio.to_thread(work, *args) if self.spend.blocking else work(*args)

    def _parsed(self, response: httpx.Response, answer: Answer) -> Answer:
        try:
            data = json.loads(response.content)
        except (ValueError, UnicodeDecodeError):
            answer.error = f"the answer is not JSON: {response.content[:80]!r}"
            return answer
        answer.tokens = self.kind.tokens(data)
        try:
            answer.value = self.kind.parse(data)
        except Unusable as exc:
            answer.error = str(exc)
            answer.ok = answer.unscored = self.kind.keeps_unusable
            return answer
        answer.ok = True
        return answer


def _seconds(header: str | None) -> float | None:
    try:
        return max(0.0, float(header)) if header else None
    except ValueError:
        return None  # an HTTP date: use our own backoff


_loop: asyncio.AbstractEventLoop | None = None
_loop_pid = -1
_loop_lock = threading.Lock()


def process_loop() -> asyncio.AbstractEventLoop:
    """This process's event loop for remote calls, started on first use (again after a fork)."""
    global _loop, _loop_pid
    with _loop_lock:
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="remote-rewards", daemon=True).start()
            _loop, _loop_pid = loop, os.getpid()
        return _loop
