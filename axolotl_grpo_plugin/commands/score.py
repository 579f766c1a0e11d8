"""`axolotl-grpo score CONFIG --input FILE.jsonl`: the command over `score` (the library)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from axolotl_grpo_rewards.errors import RewardConfigError, RewardContractError

from .. import score
from ..errors import EXIT_BAD_INPUT, EXIT_FAILED, PluginError
from ..score import run
from .flags import at_least, exit_for


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="axolotl-grpo score", description=score.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
        "  axolotl-grpo score configs/gsm8k.yaml --input outputs/run1/rollouts.jsonl\n"
        "  axolotl-grpo score judge.yaml --input rows.jsonl --output judged.jsonl   # a judge on old completions")
    parser.add_argument("config", help="the Axolotl yaml whose trl.reward_funcs (and grpo_plugin.remote_rewards) score")
    parser.add_argument("--input", required=True, type=Path, help="jsonl rows with `completion`, and `prompt`, "
                        "`answer` and any columns the rewards read")
    parser.add_argument("--output", type=Path, default=None, help="where the scored rows go "
                        "(default: INPUT with .scored.jsonl); replaced only when every row is scored")
    parser.add_argument("--batch-size", type=at_least(1, "e.g. --batch-size 64 (the default)"),
                        default=64, help="rows per reward call (remote rewards "
                        "send a batch concurrently); default 64")
    args = parser.parse_args(argv)
    output = args.output or args.input.with_name(args.input.name.removesuffix(".jsonl") + ".scored.jsonl")
    try:
        lines = run(args.config, args.input, output, args.batch_size)
    except PluginError as exc:
        return exit_for(exc)
    except (RewardConfigError, RewardContractError) as exc:  # what stops training stops scoring
        print(f"axolotl-grpo score: {exc}\n{output} was left as it was.", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"axolotl-grpo score: {exc}; {output} was left as it was.", file=sys.stderr)
        return EXIT_FAILED
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
