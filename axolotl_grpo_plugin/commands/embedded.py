"""Command line: ``axolotl-grpo embedded {build,data}``."""

from __future__ import annotations

import argparse
import sys
import time

from ..embedded.builder import DEFAULT_OUT, EMBEDDED_VERSION, VARIANTS, build
from ..embedded.sample_data import DATA_DIR, DEMO_TEST_ROWS, DEMO_TRAIN_ROWS, TEST_ROWS, TRAIN_ROWS, write_sample_data
from .flags import prog, run_quietly


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("embedded"),
        description=(
            "Build the offline stand-ins used by tests, CI and configs/smoke.yaml: "
            "a tiny random-weight Qwen2 model with its own byte-level BPE tokenizer, "
            "and GSM8K-style sample data. Nothing is downloaded."
        ),
        epilog="examples (from a checkout's root, where configs/smoke.yaml looks for .cache/embedded/):\n"
        "  axolotl-grpo embedded build                  # then: axolotl train configs/smoke.yaml\n"
        "  axolotl-grpo embedded build --variant hd32   # for configs/cpu-vllm-*.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{build,data}")

    build_cmd = commands.add_parser(
        "build",
        help="build the tiny model + tokenizer into OUT/tiny-qwen2 (cached)",
        description=(
            "Write OUT/tiny-qwen2/ (tokenizer, Qwen2ForCausalLM weights, generation config), "
            "loadable with AutoTokenizer/AutoModelForCausalLM.from_pretrained. A build.json "
            f"stamp (seed + version {EMBEDDED_VERSION}) makes repeat calls return immediately; "
            "the directory is written elsewhere and renamed, so an interrupted build leaves "
            "nothing that looks valid."
        ),
    )
    build_cmd.add_argument("--out", default=str(DEFAULT_OUT), help="output root (default: %(default)s)")
    build_cmd.add_argument("--seed", type=int, default=0, help="seed for the model weights (default: %(default)s)")
    build_cmd.add_argument("--force", action="store_true", help="rebuild even if an up-to-date build exists")
    build_cmd.add_argument(
        "--variant", choices=sorted(VARIANTS), default="default",
        help="`hd32`: 2 heads / 1 KV head (head_dim 32) in OUT/tiny-qwen2-hd32, same width and "
             "parameter count, for vLLM on CPU, whose attention needs head_dim >= 32 "
             "(default: %(default)s)")

    data_cmd = commands.add_parser(
        "data",
        help="(re)generate the bundled GSM8K-style jsonl sample",
        description=(
            f"Write gsm8k_sample.jsonl ({TRAIN_ROWS} rows) and gsm8k_sample_test.jsonl "
            f"({TEST_ROWS} held-out rows, no question overlap), and the demo's easier "
            f"demo_train.jsonl ({DEMO_TRAIN_ROWS}) and demo_test.jsonl ({DEMO_TEST_ROWS}). Output is deterministic; "
            "tests check the committed files match it."
        ),
    )
    data_cmd.add_argument("--out", default=str(DATA_DIR), help="output directory (default: %(default)s)")
    for command in (build_cmd, data_cmd):
        command.add_argument("--verbose", action="store_true", help="also show what torch and "
                             "transformers print while loading (by default it goes to a log file, "
                             "whose path is printed at the end)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from ..errors import PluginError, Problem

    def work() -> None:
        try:
            _run(args)
        except OSError as exc:  # an unwritable --out: say which, not a traceback
            raise PluginError([Problem("--out", args.out, f"cannot write there ({exc.strerror or exc})",
                                       "pass a directory you can write to")]) from None

    return run_quietly("embedded", args.verbose, work)


def _run(args: argparse.Namespace) -> None:
    if args.command == "build":
        result = build(args.out, seed=args.seed, force=args.force, variant=args.variant)
        if result.cached:
            print(f"Up to date: {result.model_dir} (seed {args.seed}, version {EMBEDDED_VERSION}); "
                  "use --force to rebuild.")
        else:
            print(f"Built {result.model_dir} (seed {args.seed}, vocab {result.vocab_size}, "
                  f"{result.parameters:,} parameters) in {result.seconds:.1f}s.")
        return
    start = time.perf_counter()
    for path in write_sample_data(args.out):
        rows = sum(1 for _ in path.open(encoding="utf-8"))
        print(f"Wrote {rows} rows to {path}")
    print(f"Done in {time.perf_counter() - start:.2f}s.")


if __name__ == "__main__":
    sys.exit(main())
