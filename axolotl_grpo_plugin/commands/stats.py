"""`axolotl-grpo stats`: prompt-token budgets for GRPO, from a training config or explicit inputs."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ..config.defaults import MAX_COMPLETION_LENGTH
from ..system.paths import DATA_DIR, embedded_dir
from .flags import add_output_flags, at_least, prog, run_quietly


EMBEDDED_DIR = embedded_dir()

DESCRIPTION = """\
Count prompt tokens exactly as the GRPO trainer will: the dataset's registered
transform, the config's chat template with the generation prompt, the real
tokenizer. Prints min/mean/p50/p95/p99/max, the longest prompts, the
recommended vllm.max_model_len (max prompt + max_completion_length, rounded up
to a multiple of 8) and how many prompts the config's current max_model_len
would reject or cut short.

Exit status: 0 when the config's budget fits (or none is set), 1 when
vllm.max_model_len rejects or truncates prompts, 2 on bad input."""

EPILOG = f"""\
examples (in a checkout, `python stats.py` is the same command):
  # offline, with what the package ships (`axolotl-grpo embedded build` makes the tokenizer)
  axolotl-grpo stats --tokenizer {EMBEDDED_DIR}/tiny-qwen2 \\
      --dataset {DATA_DIR}/gsm8k_sample.jsonl --transform gsm8k --plot gsm8k.png
  # a config (`axolotl-grpo configs cfg` writes the packaged ones into cfg/)
  axolotl-grpo stats cfg/smoke.yaml --json
  # from a checkout, the real model and data (Hub: network or the Hugging Face cache)
  axolotl-grpo stats configs/gsm8k.yaml

Hub ids (openai/gsm8k, Qwen/...) need the network or the Hugging Face cache; offline,
point --dataset at a local json/jsonl/parquet file and --tokenizer at a local directory.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog("stats"), description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", nargs="?", help="the Axolotl training yaml (optional with --tokenizer and --dataset)")
    inputs = parser.add_argument_group("inputs (override the config's values, or replace the config)")
    inputs.add_argument("--tokenizer", metavar="NAME_OR_DIR", help="tokenizer directory or Hub id (default: base_model)")
    inputs.add_argument("--dataset", metavar="NAME_OR_FILE",
                        help="json/jsonl/parquet/csv file, save_to_disk directory, or Hub id")
    inputs.add_argument("--split", help="dataset split (default: the config's, else train)")
    inputs.add_argument("--transform", metavar="NAME",
                        help="registered transform (e.g. gsm8k), module.function, or 'none' "
                        "when the dataset already has a `prompt` column")
    inputs.add_argument("--chat-template", metavar="NAME_OR_FILE",
                        help="Axolotl chat_template name (qwen_25, llama3, chatml, tokenizer_default, ...) "
                        "or a .jinja file (default: the config's, else the tokenizer's own)")
    inputs.add_argument("--max-completion-length", type=at_least(1, "e.g. --max-completion-length 512"), metavar="N",
                        help="completion budget (default: trl.max_completion_length, else the installed "
                        f"TRL's default, {MAX_COMPLETION_LENGTH})")
    inputs.add_argument("--max-model-len", type=at_least(1, "e.g. --max-model-len 1024"), metavar="N",
                        help="judge this vllm.max_model_len instead of the config's")
    output = parser.add_argument_group("output")
    output.add_argument("--json", action="store_true", help="print the report as JSON on stdout")
    output.add_argument("--plot", metavar="FILE.png", help="write a histogram with the percentiles marked")
    output.add_argument("--top", type=at_least(1, "e.g. --top 5 (the default)"), default=5, metavar="K",
                        help="longest prompts to list (default 5)")
    add_output_flags(output)  # --no-progress, --verbose: as probe and evaluate have them
    speed = parser.add_argument_group("speed")
    speed.add_argument("--method", choices=("fast", "full", "reference"), default="fast",
                       help="fast: each word's token count cached, prompts the cache cannot count exactly encoded "
                       "whole (default); full: every prompt encoded whole; reference: the transformers tokenizer, "
                       "rows through datasets. All three give the same counts")
    speed.add_argument("--num-proc", type=at_least(1, "leave it out (it is unused)"), metavar="N",
                       help="accepted and unused: counting runs in one process (worker processes saved under 10%%)")
    speed.add_argument("--batch-size", type=at_least(1, "e.g. --batch-size 2048 (the default)"), default=2048,
                       metavar="N",
                       help="prompts rendered and tokenized per batch (default 2048)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.config is None and not (args.tokenizer and args.dataset):
        print("error: pass CONFIG.yaml, or both --tokenizer and --dataset (see --help)", file=sys.stderr)
        return 2
    if args.plot and (why := _plot_refused(args)):  # before the counting, not after
        print(f"error: {why}", file=sys.stderr)
        return 2
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")
    from ..seqstats.report import render_text

    verdict = {}

    def work() -> None:  # what datasets, transformers and torch print goes to the log (--verbose: here)
        report = _report(args)
        verdict["ok"] = report.verdict.ok
        written = _plot(report, args.plot) if args.plot else None
        if args.json:
            print(json.dumps(report.to_json(), indent=2))
        else:
            print(render_text(report))
            if written:
                print(f"histogram:      {written}")
        sys.stdout.flush()

    try:
        code = run_quietly("stats", args.verbose, work, show_log=not args.json)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code or (0 if verdict["ok"] else 1)


def _report(args):
    from ..errors import PluginError
    from ..seqstats.api import prompt_token_stats
    from ..seqstats.sources import StatsError

    try:
        return prompt_token_stats(
            args.config, tokenizer=args.tokenizer, dataset=args.dataset, split=args.split,
            transform=args.transform, chat_template=args.chat_template,
            max_completion_length=args.max_completion_length, max_model_len=args.max_model_len,
            num_proc=args.num_proc, batch_size=args.batch_size, top=args.top,
            progress=not args.no_progress, method=args.method,
        )
    except PluginError:
        raise
    except Exception as exc:  # a case without its own message: still one line, traceback on request
        if os.environ.get("STATS_DEBUG"):
            raise
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise StatsError(f"{type(exc).__name__}: {text}. Fix: check the config and inputs; "
                         "rerun with STATS_DEBUG=1 to see where it failed.") from None


def _plot(report, path: str):
    from ..seqstats.plot import write_histogram
    from ..seqstats.sources import StatsError

    try:
        return write_histogram(report, path)
    except ImportError:
        raise StatsError("--plot needs matplotlib. Fix: pip install matplotlib") from None
    except OSError as exc:
        raise StatsError(f"--plot {path!r}: cannot write it ({exc.strerror or exc}). "
                         "Fix: choose a writable path.") from None


def _plot_refused(args) -> str | None:
    """The error when --plot cannot be written (not a .png, one of the inputs, an unwritable
    path), or None: in seconds, before the prompts are counted."""
    from pathlib import Path

    from ..system.safe_files import config_inputs, input_clash, overwritten_input, unwritable

    where = f"--plot = {args.plot!r}"
    if Path(args.plot).suffix.lower() != ".png":
        return f"{where}: the histogram is a PNG image. Fix: give a path ending in .png"
    inputs = config_inputs(args.config) + [(args.dataset, "the --dataset file"),
                                           (args.chat_template, "the --chat-template file")]
    if clash := overwritten_input(args.plot, inputs):
        return input_clash("--plot", args.plot, clash)
    if why := unwritable(args.plot):
        return f"{where}: {why}. Fix: choose a writable path"
    return None

