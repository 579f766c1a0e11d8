"""`axolotl-grpo evaluate CONFIG --model DIR_OR_ID`: accuracy and pass@k
of a checkpoint on held-out prompts, scored with the config's training rewards."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..system.paths import DATA_DIR, embedded_dir, packaged_config
from ..system.safe_files import write_atomic
from .flags import add_output_flags, add_sampling_flags, at_least, prog, sampling_main


DEMO_CONFIG = packaged_config("demo")
EMBEDDED_DIR = embedded_dir()

EPILOG = f"""\
what it reports (greedy decoding unless noted):
  accuracy            share of problems whose correctness reward is > 0
  pass@k              unbiased estimator over --samples sampled completions per problem
  format_compliance   share of completions in the strict <reasoning>/<answer> format
  mean_length         completion tokens
  rewards/NAME        mean of each configured reward

splits: --split train reads `datasets:`; --split test reads `test_datasets:` when the
config has them, else the `test` split of the Hub datasets. A local file has one
split: point --dataset at the held-out file instead.

examples:
  # the demo's model after `axolotl-grpo demo` (demo.yaml has no test split: the
  # held-out file is passed), against the base it started from
  axolotl-grpo evaluate {DEMO_CONFIG} --model outputs/demo \\
      --dataset {DATA_DIR}/demo_test.jsonl --baseline {EMBEDDED_DIR}/tiny-qwen2-base
  # from a checkout: a trained checkpoint on the GSM8K test split (Hub dataset), pass@8
  axolotl-grpo evaluate configs/gsm8k.yaml --model outputs/gsm8k-grpo --samples 8 --limit 200

outputs: eval-SPLIT.json (summary) and eval-SPLIT-samples.jsonl next to a local model,
or in --out (default ./eval-outputs/NAME for a Hub id).

R1's rejection-sampling round (after a cold-start SFT, before GRPO): sample the SFT model on
train prompts and keep one in-format reply per prompt, then fine-tune it on them
(`type: chat_template`, `field_messages: messages`; `axolotl-grpo configs DIR` writes these
configs outside a checkout):
  axolotl-grpo evaluate configs/smollm2-gsm8k-grpo-cpu.yaml --model outputs/smollm2-gsm8k-sft \\
      --split train --limit 512 --samples 4 --keep-replies outputs/smollm2-gsm8k-rs/replies.jsonl
  AXOLOTL_DO_NOT_TRACK=1 axolotl train configs/smollm2-gsm8k-sft-rs.yaml   # reads that file
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog("evaluate"), description=__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("config", help="the Axolotl yaml the model was trained with")
    parser.add_argument("--model", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--baseline", help="a second model to compare against, on the same prompts")
    parser.add_argument("--split", default="test", help="dataset split (default: test)")
    parser.add_argument("--dataset", help="read prompts from this file or Hub id instead "
                        "(transformed with the config's dataset type)")
    parser.add_argument("--samples", type=at_least(0, "0 for greedy only, or e.g. --samples 8"), default=1,
                        help="sampled completions per problem for pass@k (default 1; 0 = greedy only)")
    parser.add_argument("--limit", type=at_least(1, "leave it out to evaluate every problem, or e.g. --limit 200"),
                        help="evaluate only the first N problems")
    add_sampling_flags(parser, decides="correctness")
    parser.add_argument("--max-new-tokens", type=at_least(1, "leave it out for the config's "
                                                            "trl.max_completion_length, or e.g. --max-new-tokens 256"),
                        help="default: the config's trl.max_completion_length")
    parser.add_argument("--out", help="directory for the outputs (see below)")
    parser.add_argument("--keep-replies", metavar="PATH",
                        help="also write, per problem, one in-format reply (a correct one first) "
                        "as a chat row for SFT: R1's rejection-sampling round (see below)")
    add_output_flags(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    return sampling_main("evaluate", build_parser(), argv, _work)


def _work(args: argparse.Namespace) -> Callable[[], None]:
    """The evaluation of the parsed flags, to run under the capture; its modules imported first."""
    from ..evaluate.core import evaluate
    from ..evaluate.rejection import write_replies
    from ..evaluate.results import compare, default_out_dir, format_comparison, format_result, write_results
    from ..sampling.checks import check_device, check_model_dir, check_out_dir, check_output, config_inputs
    from ..sampling.models import check_model

    def work() -> None:
        # everything a later step needs is checked here, before the first model loads
        device = check_device(args.device)
        for flag, model in (("--model", args.model), ("--baseline", args.baseline)):
            if model:
                check_model(model, flag, hub=True)
                check_model_dir(model, flag)
        inputs = config_inputs(args.config, args.dataset)
        out = Path(args.out) if args.out else default_out_dir(args.model)
        stem = f"eval-{args.split}"
        files = [f"{stem}.json", f"{stem}-samples.jsonl"]
        if args.baseline:
            files.append(f"{stem}-vs-baseline.json")
        check_out_dir("--out", out, files, inputs)
        base_out = None
        if args.baseline:
            base_out = out / "baseline" if args.out else default_out_dir(args.baseline)
            check_out_dir("--out" if args.out else "--baseline", base_out, files[:2], inputs)
        if args.keep_replies:
            check_output("--keep-replies", args.keep_replies, inputs)

        options = dict(split=args.split, samples=args.samples, limit=args.limit, seed=args.seed,
                       batch_size=args.batch_size, max_new_tokens=args.max_new_tokens,
                       dataset=args.dataset, device=device, backend=args.backend,
                       correct_reward=args.correct_reward, progress=not args.no_progress, flags=True)
        result = evaluate(args.config, args.model, **options)
        # the baseline runs before anything is written: a failure there keeps the last good outputs
        base = evaluate(args.config, args.baseline, **options) if args.baseline else None
        summary, samples = write_results(result, out, extra={"config": args.config})
        print(format_result(result))
        print(f"wrote {summary} and {samples}")
        if args.keep_replies:
            path, kept, correct = write_replies(result.records, args.keep_replies)
            print(f"wrote {path}: {kept} of {result.n_problems} problems had an in-format reply "
                  f"({correct} of them correct)")
        if base is not None:
            write_results(base, base_out, extra={"config": args.config})
            print(format_result(base))
            table = compare(result, base, seed=args.seed)
            print(f"\n{args.model} minus {args.baseline} (paired bootstrap over "
                  f"{result.n_problems} problems):")
            print(format_comparison(table))
            path = out / f"{stem}-vs-baseline.json"
            write_atomic(path, json.dumps({"baseline": args.baseline, "metrics": table}, indent=2) + "\n")
            print(f"wrote {path}")

    return work


if __name__ == "__main__":
    sys.exit(main())
