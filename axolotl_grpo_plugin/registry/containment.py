"""Containment for every registered reward, and every reward given as an import path (unless it
opts out with ``reward_contained = False``): model output must never break training.

In TRL one exception in a reward kills the step (and hangs the other ranks), a
reward that returns too few values is silently broadcast, and nothing bounds how
long a reward may take. The registry wraps each reward it loads in
``ContainedReward``, which

- turns an exception into ``ERROR_VALUE`` for the sample that caused it (the
  batch is re-scored one sample at a time to find it), logs the first one per
  reward with the sample index, and counts them;
- gives every call a time budget: rewards that call evaluators which can blow
  up run in a killable worker process (``isolation.IsolatedRunner``) under a
  per-sample and a per-call budget (a sample over its own budget scores
  ``ERROR_VALUE``; samples the spent call budget left unscored score None, TRL's
  "no score", so a run of hanging samples cannot zero the good ones after them);
  linear-time rewards run inline, where an overrun is detected and counted (their
  cost is bounded by construction and checked by the property tests);
- refuses a result that is not one value per completion with an error naming
  the function (a bug in the reward, not in the model's output);
- reports ``rewards/<name>/errors`` and ``rewards/<name>/timeouts`` per batch
  through TRL's ``log_metric`` keyword, so they reach the trainer logs.

It keeps the reward's ``__name__`` (TRL names metrics ``rewards/<__name__>/mean``)
and pickles by registered name, so it can be sent to reward worker processes.
"""

from __future__ import annotations

import inspect
import logging
import math
import pickle
import threading
import time
from array import array
from typing import Any

from axolotl_grpo_rewards.errors import RewardConfigError, RewardContractError
from axolotl_grpo_rewards.text import completion_text

from .imports import import_attribute
from .isolation import ERROR, OK, TIMEOUT, IsolatedRunner


LOG = logging.getLogger("axolotl_grpo_plugin.rewards")

ERROR_VALUE = 0.0
CALL_BUDGET_S = 60.0
SAMPLE_BUDGET_S = 5.0
INLINE, PROCESS = "inline", "process"
# Keywords TRL passes that are not data: never sent to a worker process.
NON_DATA_KWARGS = ("trainer_state", "log_extra", "log_metric", "environments")
PREFILL_COLUMN = "reasoning_prefill"


class ContainedReward:
    """A registered reward that cannot raise on model output, hang, or miscount."""

    def __init__(
        self,
        fn: Any,
        name: str,
        target: str,
        isolation: str = INLINE,
        sample_budget_s: float = SAMPLE_BUDGET_S,
        call_budget_s: float = CALL_BUDGET_S,
    ):
        self.__wrapped__ = fn
        self.registered_name = name
        self.target = target
        self.isolation = isolation
        self.sample_budget_s = sample_budget_s
        self.call_budget_s = call_budget_s
        self.__name__ = getattr(fn, "__name__", name)
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.errors = 0
        self.timeouts = 0
        self._logged: set[str] = set()
        self._stats_lock = threading.Lock()
        self._runner: IsolatedRunner | None = None
        self._positional = _positional_names(fn)

    def __repr__(self) -> str:
        return f"<contained reward {self.registered_name!r} ({self.target}, {self.isolation})>"

    def __reduce__(self):
        # Unpickled (e.g. in a reward worker) by importing the registry's path again:
        # the same wrapper, without this module importing the registry.
        return (import_attribute, (self.import_path,))

    def __call__(self, *args: Any, **kwargs: Any) -> list[float | None]:
        if args:
            kwargs = {**dict(zip(self._positional, args)), **kwargs}
        completions = kwargs.get("completions")
        n = len(completions) if isinstance(completions, (list, tuple)) else 0
        if PREFILL_COLUMN in kwargs:
            kwargs = apply_prefill(kwargs, n)
        if self.isolation == PROCESS:
            values, errors, timeouts = self._call_isolated(kwargs, n)
        else:  # the hot path: kept flat, it runs for every reward on every batch
            start = time.monotonic()
            try:
                out = self.__wrapped__(**kwargs)
            except RewardConfigError:
                raise
            except Exception as exc:  # noqa: BLE001 - find the sample(s) that caused it
                self._log_once("error", f"raised {_brief(exc)} on a batch of {n}; scoring it sample by sample")
                values, errors = self._call_per_sample(kwargs, n)
            else:
                values, errors = self._checked(out, n)
            elapsed = time.monotonic() - start
            timeouts = 0
            if elapsed > self.call_budget_s:
                timeouts = 1
                self._log_once("timeout", f"took {elapsed:.1f}s, over its {self.call_budget_s:g}s budget")
        log_metric = kwargs.get("log_metric")
        if errors or timeouts or log_metric is not None:
            self._count(errors, timeouts, log_metric)
        return values

    # -- inline ---------------------------------------------------------------

    def _call_per_sample(self, kwargs: dict, n: int) -> tuple[list, int]:
        values: list[float | None] = []
        errors = 0
        for i in range(n):
            try:
                out = self.__wrapped__(**sample_kwargs(kwargs, i, n))
            except RewardConfigError:
                raise
            except Exception as exc:  # noqa: BLE001
                self._log_once("sample-error", f"raised {_brief(exc)} on sample {i}; scored {ERROR_VALUE}")
                values.append(ERROR_VALUE)
                errors += 1
                continue
            one, bad = self._checked(out, 1)
            values.extend(one)
            errors += bad
        return values, errors

    # -- isolated -------------------------------------------------------------

    def _call_isolated(self, kwargs: dict, n: int) -> tuple[list, int, int]:
        data = {k: v for k, v in kwargs.items() if k not in NON_DATA_KWARGS and not callable(v)}
        samples = [sample_kwargs(data, i, n) for i in range(n)]
        try:
            pickle.dumps(samples)
        except Exception as exc:  # noqa: BLE001
            self._log_once("error", f"columns cannot be sent to its worker ({_brief(exc)}); scored {ERROR_VALUE}")
            return [ERROR_VALUE] * n, n, 0
        if self._runner is None:
            self._runner = IsolatedRunner(self.target)
        outcomes = self._runner.score(samples, self.sample_budget_s, self.call_budget_s)
        values: list[float | None] = []
        errors = timeouts = 0
        for i, outcome in enumerate(outcomes):
            if outcome.kind == OK:
                one, bad = self._checked([outcome.value], 1)
                values.extend(one)
                errors += bad
            elif outcome.kind == "contract":
                raise RewardContractError(self._contract_message(outcome.detail))
            elif outcome.kind == TIMEOUT and outcome.unscored:  # no time left in the call: no score
                self._log_once("unscored", f"sample {i} and later: {outcome.detail}; scored None (not scored)")
                values.append(None)
                timeouts += 1
            elif outcome.kind == TIMEOUT:
                self._log_once("timeout", f"sample {i}: {outcome.detail}; scored {ERROR_VALUE}")
                values.append(ERROR_VALUE)
                timeouts += 1
            else:
                if outcome.detail.startswith(RewardConfigError.__name__):
                    raise RewardConfigError(outcome.detail)
                self._log_once(ERROR, f"raised {outcome.detail} on sample {i}; scored {ERROR_VALUE}")
                values.append(ERROR_VALUE)
                errors += 1
        return values, errors, timeouts

    def close(self) -> None:
        """Stop the worker process, if any."""
        if self._runner is not None:
            self._runner.close()

    # -- results --------------------------------------------------------------

    def _checked(self, out: object, n: int) -> tuple[list[float | None], int]:
        """One float or None per completion; a value that is not a finite number is an error."""
        if type(out) is list and len(out) == n:
            try:  # the usual result, all numbers: converted and checked in C
                floats = array("d", out)
                if math.isfinite(sum(floats)):
                    return floats.tolist(), 0
            except Exception:  # noqa: BLE001 - None, strings, odd objects: checked one by one below
                pass
        if isinstance(out, tuple):
            out = list(out)
        if not isinstance(out, list) or len(out) != n:
            got = f"{len(out)} values" if isinstance(out, list) else f"a {type(out).__name__}"
            raise RewardContractError(self._contract_message(f"returned {got} for {n} completions"))
        values: list[float | None] = []
        errors = 0
        for i, value in enumerate(out):
            number = _as_reward(value)
            if number is _BAD:
                self._log_once("value", f"returned {_short_repr(value)} for sample {i}; scored {ERROR_VALUE}")
                number = ERROR_VALUE
                errors += 1
            values.append(number)
        if n > 1 and all(_is_nan(value) for value in out):
            # NaN is "not applicable" for one sample; for a whole batch it is a broken reward
            # (every advantage of this reward is then 0): counted as errors, said once.
            self._log_once("nan", f"returned NaN for all {n} completions of a batch (counted as errors; "
                           "return None for 'not applicable')")
            errors += n
        return values, errors

    def _contract_message(self, what: str) -> str:
        return (
            f"reward {self.__name__!r} (registered as {self.registered_name!r}, {self.target}) {what}. "
            "A reward must return a list with one value (a float, or None for 'not applicable') "
            "per completion, in order."
        )

    def _count(self, errors: int, timeouts: int, log_metric: Any) -> None:
        if errors or timeouts:
            with self._stats_lock:
                self.errors += errors
                self.timeouts += timeouts
        if log_metric is not None and callable(log_metric):
            try:
                log_metric(f"rewards/{self.__name__}/errors", float(errors))
                log_metric(f"rewards/{self.__name__}/timeouts", float(timeouts))
            except Exception:  # noqa: BLE001 - metrics must not break scoring
                pass

    def _log_once(self, kind: str, message: str) -> None:
        with self._stats_lock:
            if kind in self._logged:
                return
            self._logged.add(kind)
        LOG.warning(
            "reward %r %s (logged once; later ones are counted in rewards/%s/errors and /timeouts)",
            self.__name__, message, self.__name__,
        )


_BAD = object()


def _as_reward(value: object) -> Any:
    """float(value), None for None or NaN (TRL's 'not applicable'), _BAD for anything else."""
    if value is None:
        return None
    if isinstance(value, str):
        return _BAD
    try:
        number = float(value)
    except Exception:  # noqa: BLE001
        return _BAD
    if math.isnan(number):
        return None
    return number if math.isfinite(number) else _BAD


def sample_kwargs(kwargs: dict, i: int, n: int) -> dict:
    """The keyword arguments for sample `i` alone: per-sample lists are sliced, the rest kept."""
    return {k: (v[i : i + 1] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in kwargs.items()}


def apply_prefill(kwargs: dict, n: int) -> dict:
    """Score completions as if the chat template's pre-written opening were part of them.

    A dataset column ``reasoning_prefill`` (set by the registered transforms when
    ``grpo_plugin.prefilled_reasoning_tag`` is on) holds the text the template
    already wrote after the generation prompt, e.g. ``"<reasoning>\\n"``. The column
    is consumed here, so a routed reward does not prepend it twice.
    """
    prefixes = kwargs.get(PREFILL_COLUMN)
    if prefixes is None:
        return kwargs
    kwargs = {k: v for k, v in kwargs.items() if k != PREFILL_COLUMN}
    completions = kwargs.get("completions")
    if not isinstance(prefixes, (list, tuple)) or len(prefixes) != n or not n:
        return kwargs
    prefilled = []
    for prefix, completion in zip(prefixes, completions):
        if not isinstance(prefix, str) or not prefix:
            prefilled.append(completion)
        elif isinstance(completion, str):
            prefilled.append(prefix + completion)
        else:
            prefilled.append([{"role": "assistant", "content": prefix + completion_text(completion)}])
    kwargs["completions"] = prefilled
    return kwargs


def contain(name: str, target: str, fn: Any, builtin: bool, import_path: str) -> ContainedReward:
    """The registry's wrapper. Isolation: the reward's own ``reward_isolation``
    attribute, else inline for built-ins and a worker process for entry points.
    `import_path` imports this same wrapper again (how it is pickled)."""
    isolation = getattr(fn, "reward_isolation", INLINE if builtin else PROCESS)
    if isolation not in (INLINE, PROCESS):
        isolation = PROCESS
    reward = ContainedReward(
        fn, name, target, isolation,
        sample_budget_s=float(getattr(fn, "reward_sample_budget_s", SAMPLE_BUDGET_S)),
        call_budget_s=float(getattr(fn, "reward_call_budget_s", CALL_BUDGET_S)),
    )
    reward.import_path = import_path
    return reward


def contain_path(path: str, target: str, fn: Any, import_path: str) -> Any:
    """A reward named by import path in the config, contained like a registered one, unless
    the function opts out with ``reward_contained = False`` (then it is returned as is).
    Isolation: the function's ``reward_isolation`` attribute, else inline (it is then
    called with the whole batch, so a wrong-length result is caught)."""
    if getattr(fn, "reward_contained", True) is False:
        return fn
    return contain(path, target, fn, builtin=getattr(fn, "reward_isolation", INLINE) == INLINE,
                   import_path=import_path)


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _positional_names(fn: Any) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return ["prompts", "completions"]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params if p.kind in kinds]


def _brief(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _short_repr(value: object) -> str:
    try:
        text = repr(value) if not isinstance(value, str) else repr(value[:40])
    except Exception:  # noqa: BLE001 - a value whose repr raises is still just a bad value
        text = f"a {type(value).__name__}"
    return text[:60]
