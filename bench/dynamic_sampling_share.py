"""Plain GRPO against dynamic sampling, from two runs' rollout logs (issue 66, item 4).

    python bench/dynamic_sampling_share.py PLAIN_OUTPUT_DIR DYNAMIC_OUTPUT_DIR [--min-std 1e-6]
        [--tokens N] [--json]

For each run, over its training rollouts (every round's, set-aside groups included):

- generated tokens: the completions' lengths summed (what generation costs);
- trained groups: every group but those set aside or dropped, and carried groups count only when a
  later step trained them (a carry left at the last step never trained);
- `zero_std_trained`: the share of trained groups whose reward std is at or below `--min-std`
  (plain GRPO: its groups without spread; the issue's target with dynamic sampling: <= 5 %);
- `spread_per_1m_tokens`: trained groups with spread per 1M generated tokens (target: >= 1.3x
  plain).

Both runs are compared at the same generated tokens: by default the smaller run's total (whole
steps, in order, until the budget is reached), `--tokens N` to choose. A group's spread is the
one rule (axolotl_grpo_plugin/rollouts/spread.py) over each rollout's logged `reward`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from axolotl_grpo_plugin.rollouts.log import read_rollouts  # noqa: E402
from axolotl_grpo_plugin.rollouts.spread import group_std, has_spread  # noqa: E402


UNTRAINED = ("set_aside", "dropped")
TARGET_ZERO_STD, TARGET_RATIO = 0.05, 1.3


def steps_of(output_dir: str | Path) -> dict[int, dict[tuple[int, int], list[dict]]]:
    """step -> (round, group) -> its training rollouts, in step order."""
    steps: dict[int, dict[tuple[int, int], list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in read_rollouts(output_dir):
        if record.get("mode", "train") == "train" and isinstance(record.get("step"), int):
            steps[record["step"]][(record.get("round", 1), record.get("group"))].append(record)
    return {s: dict(g) for s, g in sorted(steps.items())}


def step_tokens(groups: dict) -> int:
    return sum(int(r.get("length") or 0) for rows in groups.values() for r in rows)


def summarize(output_dir: str | Path, min_std: float = 1e-6, tokens: int | None = None) -> dict:
    """The run's figures over its first steps up to `tokens` generated tokens (all when None)."""
    steps = steps_of(output_dir)
    if not steps:
        raise SystemExit(f"{output_dir}: no training rollouts in its rollout log")
    kept_steps, spent = [], 0
    for step, groups in steps.items():
        if tokens is not None and spent >= tokens:
            break
        kept_steps.append(step)
        spent += step_tokens(groups)
    last = kept_steps[-1]
    trained = spread = zero = aside = generated = 0
    for step in kept_steps:
        for rows in steps[step].values():
            generated += 1
            fate = rows[0].get("sampling")
            if fate in UNTRAINED:
                aside += fate == "set_aside"
                continue
            if fate == "carried" and step == last:
                continue  # trained at a step past the budget, or never
            trained += 1
            if has_spread(group_std(r.get("reward") for r in rows), min_std):
                spread += 1
            else:
                zero += 1
    return {"output_dir": str(output_dir), "steps": len(kept_steps), "generated_tokens": spent,
            "generated_groups": generated, "set_aside": aside, "trained_groups": trained,
            "zero_std_trained": zero / trained if trained else 0.0,
            "spread_per_1m_tokens": spread / spent * 1e6 if spent else 0.0}


def compare(plain: str | Path, dynamic: str | Path, min_std: float = 1e-6, tokens: int | None = None) -> dict:
    """Both runs at the same generated tokens, and the issue's two targets."""
    if tokens is None:
        tokens = min(sum(step_tokens(g) for g in steps_of(run).values()) for run in (plain, dynamic))
    a, b = summarize(plain, min_std, tokens), summarize(dynamic, min_std, tokens)
    ratio = b["spread_per_1m_tokens"] / a["spread_per_1m_tokens"] if a["spread_per_1m_tokens"] else float("inf")
    return {"tokens": tokens, "plain": a, "dynamic": b, "spread_ratio": ratio,
            "targets": {f"dynamic zero_std_trained <= {TARGET_ZERO_STD:.0%}": b["zero_std_trained"] <= TARGET_ZERO_STD,
                        f"spread per 1M tokens >= {TARGET_RATIO}x plain": ratio >= TARGET_RATIO}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("plain", help="the plain GRPO run's output_dir")
    parser.add_argument("dynamic", help="the dynamic-sampling run's output_dir")
    parser.add_argument("--min-std", type=float, default=1e-6, help="the spread rule's threshold (default 1e-6)")
    parser.add_argument("--tokens", type=int, help="compare over the first N generated tokens (default: the "
                        "smaller run's total)")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args(argv)
    result = compare(args.plain, args.dynamic, args.min_std, args.tokens)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"at {result['tokens']:,} generated tokens each:")
    print(f"{'run':<9} {'steps':>5} {'tokens':>10} {'groups':>7} {'set aside':>9} {'trained':>7} "
          f"{'no spread':>9} {'spread / 1M tok':>15}")
    for name in ("plain", "dynamic"):
        r = result[name]
        print(f"{name:<9} {r['steps']:>5} {r['generated_tokens']:>10,} {r['generated_groups']:>7} "
              f"{r['set_aside']:>9} {r['trained_groups']:>7} {r['zero_std_trained']:>9.1%} "
              f"{r['spread_per_1m_tokens']:>15.1f}")
    print(f"groups with spread per 1M generated tokens: {result['spread_ratio']:.2f}x plain")
    for target, met in result["targets"].items():
        print(f"  {'met' if met else 'NOT met'}: {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
