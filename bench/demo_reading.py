"""Does the demo's model still read the question? A diagnostic for GRPO runs on the tiny base.

The held-out accuracy alone cannot tell a model that computes from one that
writes the same template answer to every question and is sometimes lucky. This
decodes the 256 held-out problems greedily (through the demo's evaluator) and
checks the first arithmetic step the model writes, e.g. ``9-6 = 3``:

* operands read: both numbers appear in the question;
* step right: the result is the right result of the expression written;
* finished: a second step is written (the demo's problems take two; the base often stops
  after one and reports its result);
* all steps right: every step written is right arithmetic, whatever its operands.

Usage:  PYTHONPATH=. python bench/demo_reading.py MODEL_DIR [MODEL_DIR ...] [--config RUN.yaml]
(the base is in .cache/embedded/tiny-qwen2-base, a trained run in outputs/demo).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path


REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from axolotl_grpo_plugin.demo import DEMO_CONFIG, heldout  # noqa: E402


STEP = re.compile(r"(\d+)\s*([-+*/])\s*(\d+)\s*=\s*(\d+)")


def step_is_right(left: int, op: str, right: int, result: int) -> bool:
    if op == "/":
        return right != 0 and result * right == left
    return {"+": left + right, "-": left - right, "*": left * right}[op] == result


def reading(completions: list[str], questions: list[str]) -> dict[str, float]:
    read = right = written = finished = all_right = 0
    for text, question in zip(completions, questions):
        steps = STEP.findall(text)
        if not steps:
            continue
        written += 1
        finished += len(steps) >= 2
        all_right += all(step_is_right(int(a), op, int(b), int(c)) for a, op, b, c in steps)
        left, op, rhs, result = steps[0]
        numbers = set(re.findall(r"\d+", question))
        read += left in numbers and rhs in numbers
        right += step_is_right(int(left), op, int(rhs), int(result))
    n = max(1, len(completions))
    return {"step written": written / n, "operands read": read / n, "step right": right / n,
            "finished": finished / n, "all steps right": all_right / n}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", help="model directories (a base or a trained run)")
    parser.add_argument("--config", default=str(DEMO_CONFIG), help="config the prompts and rewards come from")
    args = parser.parse_args()
    questions = [json.loads(line)["question"] for line in
                 heldout.HELDOUT_FILE.read_text(encoding="utf-8").splitlines() if line.strip()]
    print("| model | strict format | accuracy | step written | operands read | step right | finished | all steps right |")
    print("|---|---|---|---|---|---|---|---|")
    for model in args.models:
        scores, completions = heldout.evaluate(model, config=args.config, samples=0)
        figures = reading(completions, questions)
        print(f"| {model} | {scores.format_compliance:.1%} | {scores.accuracy:.1%} | "
              + " | ".join(f"{value:.1%}" for value in figures.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
