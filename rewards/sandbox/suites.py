"""A row's `tests` column read into one `Suite`, the same for every backend.

Three kinds, each test judged on its own:

- `asserts` (MBPP style): a list of Python snippets, usually one `assert` each; `setup` runs
  before each (imports). A plain source string is split into its top-level asserts.
- `check` (HumanEval style): `{"check": "def check(candidate): ...", "entry_point": "f"}`, with
  an optional `prelude` (HumanEval's prompt: helpers the check may call) run before the program.
- `stdio`: `[{"input": "...", "output": "..."}]` (or `{"inputs": [...], "outputs": [...]}`): the
  program's whole stdout against the output, line-end whitespace and trailing blank lines aside.

A column may hold the value itself or its JSON text (datasets keep one type per column).
Anything else is a `TestsError` saying what was expected.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass


KINDS = ("asserts", "check", "stdio")
MAX_TESTS = 256


class TestsError(ValueError):
    __test__ = False  # not a pytest class
    """A `tests` value no kind reads; the message says what it holds and what was expected."""


@dataclass(frozen=True)
class Suite:
    kind: str
    tests: tuple  # str (asserts) | {"check", "entry_point"} | {"input", "output"}
    prelude: str = ""  # source run before the program (HumanEval's prompt)
    setup: str = ""  # source run before each assert (its imports)

    def job(self, program: str) -> dict:
        """The harness's job fields for `program` against this suite."""
        return {"program": program, "kind": self.kind, "tests": list(self.tests), "prelude": self.prelude,
                "setup": self.setup}

    def as_json(self) -> str:
        """The suite as a `tests` column value (JSON text) that `parse_tests` reads back."""
        if self.kind == "check":
            return json.dumps({**self.tests[0], "prelude": self.prelude})
        if self.kind == "stdio":
            return json.dumps(list(self.tests))
        return json.dumps({"asserts": list(self.tests), "setup": self.setup, "prelude": self.prelude})


def parse_tests(value: object) -> Suite:
    """The suite in a `tests` value, or TestsError."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in "[{":
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise TestsError(f"tests look like JSON but do not parse ({exc})") from None
        else:
            return _asserts_of_source(value)
    if isinstance(value, dict):
        return _suite_of_mapping(value)
    if isinstance(value, (list, tuple)):
        return _suite_of_list(list(value))
    raise TestsError(f"tests are a {type(value).__name__}; expected a list of asserts, "
                     "{'check', 'entry_point'} or [{'input', 'output'}]")


def _suite_of_list(items: list, setup: str = "", prelude: str = "") -> Suite:
    if not items:
        raise TestsError("no tests")
    if len(items) > MAX_TESTS:
        raise TestsError(f"{len(items)} tests, over {MAX_TESTS}")
    if all(isinstance(t, str) for t in items):
        for i, test in enumerate(items):
            _parsed(test, f"test {i}")
        return Suite("asserts", tuple(items), prelude=_source(prelude, "prelude"), setup=_source(setup, "setup"))
    if all(isinstance(t, dict) for t in items):
        pairs = []
        for i, t in enumerate(items):
            if not (isinstance(t.get("input"), str) and isinstance(t.get("output"), str)):
                raise TestsError(f"test {i} has keys {sorted(t)[:6]}; a stdin/stdout test is "
                                 "{'input': str, 'output': str}")
            pairs.append({"input": t["input"], "output": t["output"]})
        return Suite("stdio", tuple(pairs))
    kinds = sorted({type(t).__name__ for t in items})
    raise TestsError(f"tests mix {', '.join(kinds)}; expected all assert strings or all {{'input', 'output'}}")


def _suite_of_mapping(value: dict) -> Suite:
    check = value.get("check", value.get("test"))
    if isinstance(check, str) and "entry_point" in value:
        entry = value["entry_point"]
        if not (isinstance(entry, str) and entry.isidentifier()):
            raise TestsError(f"entry_point {entry!r} is not a function name")
        _parsed(check, "check")
        if "def check(" not in check:
            raise TestsError("a HumanEval-style test defines check(candidate)")
        prelude = value.get("prelude", value.get("prompt", ""))
        return Suite("check", ({"check": check, "entry_point": entry},), prelude=_source(prelude, "prelude"))
    if "inputs" in value and "outputs" in value:
        inputs, outputs = value["inputs"], value["outputs"]
        if not (isinstance(inputs, list) and isinstance(outputs, list) and len(inputs) == len(outputs)):
            raise TestsError("inputs and outputs must be lists of the same length")
        return _suite_of_list([{"input": i, "output": o} for i, o in zip(inputs, outputs)])
    asserts = value.get("asserts", value.get("test_list"))
    if isinstance(asserts, list):
        return _suite_of_list(asserts, value.get("setup", value.get("test_setup_code", "")) or "",
                              value.get("prelude", "") or "")
    if isinstance(check, str):
        raise TestsError("a check(candidate) test needs its entry_point: {'check': ..., 'entry_point': 'name'}")
    raise TestsError(f"tests have keys {sorted(value)[:8]}; expected {{'check', 'entry_point'}}, "
                     "{'inputs', 'outputs'} or {'asserts'}")


def _asserts_of_source(source: str) -> Suite:
    """`assert ...` lines of a source text, one test each; the other statements are the setup."""
    tree = _parsed(source, "tests")
    tests, setup = [], []
    for node in tree.body:
        (tests if isinstance(node, ast.Assert) else setup).append(ast.get_source_segment(source, node) or "")
    if any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in tree.body):
        raise TestsError("a check(candidate) test needs its entry_point: {'check': ..., 'entry_point': 'name'}")
    if not tests:
        raise TestsError("the tests' source holds no assert")
    return _suite_of_list(tests, "\n".join(setup))


def _source(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise TestsError(f"{what} is a {type(text).__name__}, not source text")
    if text:
        _parsed(text, what)
    return text


def _parsed(source: str, what: str) -> ast.Module:
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise TestsError(f"{what} is not valid Python ({type(exc).__name__}: {str(exc)[:100]})") from None
