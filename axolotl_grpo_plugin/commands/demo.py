"""``axolotl-grpo demo``: watch GRPO teach a tiny model the R1 format and to finish its reasoning, on CPU."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

from ..demo.run import DemoError, run_demo, table
from ..embedded.builder import DEFAULT_OUT
from ..errors import PluginError
from ..system.paths import CACHE_ENV
from ..system.safe_files import write_atomic
from .flags import at_least, exit_for, prog, renamed


EPILOG = f"""examples:
  axolotl-grpo demo                  # the whole demo, a few minutes on a laptop CPU
  axolotl-grpo demo --seed 1         # another seed (base and run)
  axolotl-grpo demo --steps 40       # a shorter GRPO run
  axolotl-grpo demo --json-file out.json  # also write the figures as JSON

The base model is cached in {DEFAULT_OUT}/tiny-qwen2-base (rebuilt only when
the seed or the recipe changes; ${CACHE_ENV} moves the cache). Training is
`axolotl train` on the packaged configs/demo.yaml with absolute paths and the seed
filled in; its full log goes to OUTPUT_DIR/train.log (--verbose also shows it).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("demo"),
        description=(
            "Pre-train (or reuse) a tiny imperfect base model, score it on the 256 held-out "
            "problems (greedy; pass@1 and pass@8 from 8 samples on the first 64), GRPO-train it with `axolotl train configs/demo.yaml` "
            "and the five GSM8K rewards, score it again, print a before/after table and "
            "plot the reward curves. Uses a GPU when present; needs no download."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for the base and the run (default: %(default)s)")
    parser.add_argument("--steps", type=at_least(1, "leave it out for the demo's own, or e.g. --steps 20"),
                        default=None, help="GRPO steps (default: max_steps of configs/demo.yaml)")
    parser.add_argument("--output-dir", default="outputs/demo", help="run directory (default: %(default)s)")
    parser.add_argument("--device", default="auto", help="device for the held-out evaluation: auto, cpu, cuda (default: %(default)s)")
    parser.add_argument("--json-file", default=None, metavar="PATH", help="also write the figures and timings as JSON")
    renamed(parser, "--json", "--json-file")  # --json prints JSON in every other tool
    parser.add_argument("--base-dir", default=str(DEFAULT_OUT), help="where the base is cached (default: %(default)s)")
    parser.add_argument("--rebuild-base", action="store_true", help="pre-train the base again even if a cached one matches")
    parser.add_argument("--verbose", action="store_true",
                        help="echo the whole training log (by default: a progress bar, the log goes to a file)")
    parser.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)  # the default now
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    start = time.perf_counter()
    try:
        result = run_demo(seed=args.seed, steps=args.steps, output_dir=args.output_dir,
                          device=args.device, echo=args.verbose and not args.quiet, base_out=args.base_dir,
                          rebuild_base=args.rebuild_base, report=functools.partial(print, flush=True))
    except PluginError as err:
        return exit_for(err)
    except DemoError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    total = time.perf_counter() - start
    print()
    print(table(result))
    print()
    timings = ", ".join(f"{name} {secs:.0f}s" for name, secs in result.seconds.items())
    print(f"Done in {total:.0f}s ({timings}).")
    print(f"Training log: {result.output_dir / 'train.log'}")
    if result.plot_path:
        print(f"Reward curves: {result.plot_path}")
    if args.json_file:
        summary = {"seed": args.seed, "steps": len(result.history), "before": result.before.as_dict(),
                   "after": result.after.as_dict(), "seconds": result.seconds | {"total": total},
                   "rewards_per_step": [entry["reward"] for entry in result.history]}
        write_atomic(args.json_file, json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
