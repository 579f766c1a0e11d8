"""`axolotl-grpo SUBCOMMAND ...`: one installed command for every tool.

Each subcommand is the `main(argv)` of an existing `python -m axolotl_grpo_plugin.X`
module, imported only when it runs (so `axolotl-grpo --help` stays instant). Adding
a tool is one line in COMMANDS.
"""

from __future__ import annotations

import importlib
import sys


# name -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("axolotl_grpo_plugin.demo.__main__", "GRPO teaches a tiny model the R1 format and to finish its reasoning, on CPU (minutes)"),
    "check": ("axolotl_grpo_plugin.check", "check a training config without loading a model"),
    "stats": ("axolotl_grpo_plugin.seqstats.cli", "prompt-token budgets of a config's datasets"),
    "plan": ("axolotl_grpo_plugin.plan.cli", "GPU memory and layout plan for a config"),
    "probe": ("axolotl_grpo_plugin.probe.__main__", "will this run learn? sample the base model on training prompts first"),
    "evaluate": ("axolotl_grpo_plugin.evaluate.__main__", "held-out accuracy and format of a model"),
    "report": ("axolotl_grpo_plugin.report.__main__", "HTML report of a training run"),
    "configs": ("axolotl_grpo_plugin.export_configs", "write the packaged demo and smoke configs into a folder"),
    "embedded": ("axolotl_grpo_plugin.embedded.__main__", "build the offline tiny model, tokenizer and data"),
}
PROG = "axolotl-grpo"


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} COMMAND [ARGS...]   ({PROG} COMMAND --help for each)", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"{PROG}: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
