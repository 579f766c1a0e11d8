"""Any-layout accuracy of saved `axolotl-grpo evaluate` completions: is the final number right,
wherever the completion puts it? `evaluate` scores correctness only inside the R1 layout's
<answer> block (and reports strict format beside it); a base model that was never taught that
layout often answers right in its own (`\\boxed{18}`, "Therefore, ... 366 downloads."). This
reads eval-SPLIT-samples.jsonl and counts, per kind (greedy / sampled):

  r1_correct   the config's correctness reward > 0 (what evaluate's `accuracy` is)
  strict       strict <reasoning>/<answer> format (evaluate's `format_compliance`)
  any_layout   the number in the last \\boxed{...}, else in the last <answer> block, else the last
               number in the text (a tool run: the last assistant turn), equals the gold answer;
               a completion cut at max_new_tokens (read from eval-SPLIT.json beside the samples)
               has no final answer and does not count (its last number is mid-sentence)
  cut          completions that reached max_new_tokens

Several files (e.g. chunks of one test set, each evaluated with --dataset) are counted together.

    python bench/any_layout_accuracy.py OUT/eval-test-samples.jsonl [MORE.jsonl ...] [--json]

`evaluate` reports the same figure (`any_layout_accuracy`, greedy, from
axolotl_grpo_rewards.gsm8k.final_number); this reads files saved before it did.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

from axolotl_grpo_rewards.gsm8k import final_number, gold_number
from axolotl_grpo_rewards.text import completion_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("samples", nargs="+", help="eval-SPLIT-samples.jsonl written by `axolotl-grpo evaluate`")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for samples in map(Path, args.samples):
        summary = samples.with_name(samples.name.replace("-samples.jsonl", ".json"))
        budget = json.loads(summary.read_text()).get("max_new_tokens") if summary.is_file() else None
        with samples.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                c = counts[row.get("kind", "greedy")]
                c["n"] += 1
                c["r1_correct"] += bool(row.get("correct"))
                c["strict"] += bool(row.get("strict_format"))
                cut = budget is not None and row.get("tokens", 0) >= budget
                c["cut"] += cut
                gold = gold_number(row.get("answer"))
                value = None if cut else final_number(completion_text(row.get("completion")))
                c["any_layout"] += gold is not None and value is not None and value == gold
    out = {kind: {**c, **{f"{k}_share": round(c[k] / c["n"], 4) for k in ("r1_correct", "strict", "any_layout", "cut")}}
           for kind, c in counts.items()}
    if args.json:
        print(json.dumps(out, indent=2))
        return
    for kind, c in out.items():
        print(f"{kind}: {c['n']} completions")
        for k in ("r1_correct", "strict", "any_layout", "cut"):
            print(f"  {k:<11} {c[k]:>5}  {100 * c[k + '_share']:.1f} %")


if __name__ == "__main__":
    main()
