"""Code with tests: the completion's program, run against the row's tests in the sandbox.

The program is the completion's last ```python block (inside the `<answer>` block when there is
one). `tests` is the row's column, in any form sandbox/suites.py reads: MBPP-style asserts, a
HumanEval `check(candidate)` with its `entry_point`, or stdin/stdout pairs. Each test is judged
outside the program (sandbox/harness.py): exiting early, objects equal to anything, printing
"passed" or killing the parent never score.

A completion without a program scores 0.0; a row whose tests no kind reads, or a program the
sandbox could not run (the backend is down), scores None (no score) and is logged, never 0.

Examples:
    >>> extract_program("Here:\\n```python\\nprint(1)\\n```\\nand\\n```python\\nprint(2)\\n```")
    'print(2)\\n'
    >>> extract_program("<answer>\\n```python\\nx = 1\\n```\\n</answer>\\n```python\\ny = 2\\n```")
    'x = 1\\n'
    >>> extract_program("no code here") is None
    True
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict

from .gsm8k import extract_answer
from .sandbox import Job, ProgramResult, current_sandbox, run_programs
from .sandbox.suites import TestsError, parse_tests
from .text import completion_text


LOG = logging.getLogger(__name__)
MAX_PROGRAM_CHARS = 100_000
# ```python (or ```py, ```Python3) ... ```: the language tag decides, the fence may be longer
_BLOCK = re.compile(r"```[ \t]*(?:python3?|py)[ \t]*\n(.*?)```", re.IGNORECASE | re.DOTALL)

# The sandbox bounds each test; the registry's containment need not run this in a worker.
reward_isolation = "inline"
reward_call_budget_s = 600.0


def extract_program(completion: object) -> str | None:
    """The last ```python block of the answer block (or of the completion when there is none)."""
    text = completion_text(completion)
    if "<answer>" in text:
        answer = extract_answer(text)
        if _BLOCK.search(answer):
            text = answer
    blocks = _BLOCK.findall(text)
    if not blocks or not blocks[-1].strip() or len(blocks[-1]) > MAX_PROGRAM_CHARS:
        return None
    return blocks[-1]


# Results kept, newest last: `code_all_pass` after `code_pass_rate` on the same batch (TRL calls each
# reward in turn) reuses the verdicts instead of running every program twice, and the evaluator
# reports each test's verdict. Keyed by the sandbox too: `configure` starts afresh.
RECENT = 4096
_recent: OrderedDict = OrderedDict()
_recent_lock = threading.Lock()


def _key(program: str, row_tests: object) -> tuple[object, str, str]:
    tests = row_tests if isinstance(row_tests, str) else json.dumps(row_tests, sort_keys=True, default=str)
    return current_sandbox(), program, tests  # the object itself: its id is never reused while cached


def recent_result(completion: object, row_tests: object) -> tuple[str | None, ProgramResult | None]:
    """The program of `completion` and its result if it was scored lately in this process (the
    evaluator reports each test's verdict without running the program again)."""
    program = extract_program(completion)
    if program is None:
        return None, None
    with _recent_lock:
        return program, _recent.get(_key(program, row_tests))


def _remember(program: str, row_tests: object, result: ProgramResult) -> None:
    with _recent_lock:
        _recent[_key(program, row_tests)] = result
        while len(_recent) > RECENT:
            _recent.popitem(last=False)


def run_completions(completions: list, tests: list) -> list[ProgramResult | None]:
    """Each completion's results against its row's tests: None when its tests cannot be read,
    a ProgramResult without tests when it holds no program."""
    results: list[ProgramResult | None] = [None] * len(completions)
    jobs, where = [], []
    for i, (completion, row_tests) in enumerate(zip(completions, tests)):
        try:
            suite = parse_tests(row_tests)
        except TestsError as exc:
            LOG.warning("code reward: sample %d: its tests cannot be read (%s); it scores None", i, exc)
            continue
        program = extract_program(completion)
        if program is None:
            results[i] = ProgramResult(tests=())
            continue
        with _recent_lock:
            results[i] = _recent.get(_key(program, row_tests))
        if results[i] is not None:
            continue
        jobs.append(Job(program, suite))
        where.append(i)
    for i, job, result in zip(where, jobs, run_programs(jobs)):
        if result.error:
            LOG.warning("code reward: sample %d was not run: %s", i, result.error)
        else:
            _remember(job.program, tests[i], result)
        results[i] = result
    return results


def _scores(completions, tests, score) -> list[float | None]:
    try:
        if tests is None or len(tests) != len(completions):
            LOG.warning("code reward: no `tests` column for these completions; they score None")
            return [None] * len(completions)
        out = []
        for result in run_completions(list(completions), list(tests)):
            if result is None or result.error:
                out.append(None)
            else:
                out.append(score(result) if result.tests else 0.0)
        return out
    except Exception as exc:  # noqa: BLE001 - a reward never raises: the batch scores None, logged
        LOG.warning("code reward failed on a batch: %s: %s", type(exc).__name__, exc)
        return [None] * len(completions)


def code_pass_rate(completions, tests=None, **kwargs) -> list[float | None]:
    """The share of the row's tests the completion's program passes (0.0 without a program).

    Examples:
        >>> code_pass_rate(["no code"], tests=[["assert True"]])
        [0.0]
    """
    return _scores(completions, tests, lambda result: result.pass_rate)


def code_all_pass(completions, tests=None, **kwargs) -> list[float | None]:
    """1.0 when the completion's program passes every test of its row, else 0.0.

    Examples:
        >>> code_all_pass(["no code"], tests=[["assert True"]])
        [0.0]
    """
    return _scores(completions, tests, lambda result: float(all(t.passed for t in result.tests)))


for _reward in (code_pass_rate, code_all_pass):
    _reward.reward_isolation = reward_isolation
    _reward.reward_call_budget_s = reward_call_budget_s
