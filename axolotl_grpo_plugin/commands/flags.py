"""The flags several commands share, and the argparse types every whole-number flag uses: one
definition each, so a flag reads and defaults the same in every command. Also the shell they share:
how a PluginError is printed (`exit_for`), a command's work run with the chatter in a log
(`run_quietly`) and the sampling tools' main (`sampling_main`), here because printing for the
user is a command's job, never a library's."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable

from ..errors import EXIT_BAD_INPUT, EXIT_FAILED, PluginError


PROG = "axolotl-grpo"


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


def exit_for(exc: PluginError) -> int:
    """Print a PluginError on stderr as every command shows one (a block of problems as it is, else
    one `error: ...` line) and return its exit code: libraries raise, the command prints."""
    text = exc.render()
    print(text if exc.style == "block" and exc.problems else f"error: {text}", file=sys.stderr)
    return exc.exit_code


def run_quietly(tool: str, verbose: bool, work: Callable[[], None], show_log: bool = True) -> int:
    """A command's `work` with fd 2 in `tool_log(tool)` (unless `verbose`): its exit code. A
    PluginError it raises is printed (after the capture, so alone) as the tool's error, with the
    log's path when it failed at run time; on success the log's path is the last line printed,
    unless `show_log` is False (--json)."""
    from ..system.quiet import captured_stderr, tool_log

    log = None if verbose else tool_log(tool)
    failure = None
    with captured_stderr(log, enabled=log is not None):
        try:
            work()
        except PluginError as exc:
            failure = exc
    if failure is not None:
        code = exit_for(failure)
        if log is not None and code == EXIT_FAILED:  # a run-time failure: the log may say why
            print(f"full log: {log}", file=sys.stderr)
        return code
    if log is not None and show_log:
        print(f"full log: {log}")
    return 0


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


def refused_device(device: str | None) -> bool:
    """--device in none of its forms (auto, cpu, cuda, cuda:N): said on stderr, before any import
    of torch, for the sampling tools (probe, evaluate) to exit 2."""
    from ..sampling.checks import bad_device_form

    if bad := bad_device_form(device):
        print(f"error: {bad}", file=sys.stderr)
        return True
    return False


def sampling_main(tool: str, parser: argparse.ArgumentParser, argv: list[str] | None,
                  work_for: Callable[[argparse.Namespace], Callable[[], None]]) -> int:
    """The `main` of the tools that sample a model (probe, evaluate): parse; refuse a bad --device
    before torch is imported (exit 2); keep tokenizers' fork warning off; then the work `work_for`
    builds from the flags, under `run_quietly` (no closing log line with --json: JSON alone)."""
    args = parser.parse_args(argv)
    if refused_device(args.device):
        return EXIT_BAD_INPUT
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return run_quietly(tool, args.verbose, work_for(args), show_log=not getattr(args, "json", False))
