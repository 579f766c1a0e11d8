"""The tools the model calls in its rollouts (`grpo_plugin.tools`, `environment`; docs/tools.md)."""

from __future__ import annotations

from ..config.run import Run
from ..errors import Problem
from ..system.launch import Launch


def check_tools(run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.tools` and `environment` import, and TRL can describe each tool."""
    from ..names import import_folders
    from ..tools import loader, trainer

    return loader.problems(run, import_folders(run.config_path)) if trainer.wanted(run) else []


def check_tools_async(run: Run, launch: Launch) -> list[Problem]:
    """Axolotl's async trainer with several training processes generates on rank 0 straight through
    the vLLM client, without TRL's tool loop: the model's calls would never run."""
    from ..tools import trainer
    from .trainer import async_key

    key = async_key(run)
    if not trainer.wanted(run) or key is None or (launch.processes or 1) <= 1:
        return []
    return [Problem(f"trl.{key}", getattr(run.trl, key),
                    f"with {launch.processes} training processes, Axolotl's async GRPO trainer generates on rank 0 "
                    "through the vLLM client without TRL's tool loop, so the model's tool calls "
                    "(`grpo_plugin.tools`) would never run.",
                    f"remove `trl.{key}` (generate and train in turn, with the tool loop), or train with one "
                    "process")]


def check_tool_template(run: Run, launch: Launch) -> list[Problem]:
    """With tools, a chat template TRL can read tool calls back from."""
    from ..tools import trainer
    from ..tools.describe import config_template_problem

    if not trainer.wanted(run) or (problem := config_template_problem(run)) is None:
        return []
    why, fix = problem
    return [Problem("chat_template", run.chat_template or "tokenizer_default", why, fix)]


MIN_ANSWER_TOKENS = 32  # a short final answer after the tool turn (`<answer>\n42\n</answer>` and its tags)


def check_tool_room(run: Run, launch: Launch) -> list[Problem]:
    """With tools, trl.max_completion_length holds one tool round and a short answer: the calls,
    the tool turns and the answer share it, and TRL drops a tool turn that does not fit."""
    from ..seqstats.api import tool_round_tokens
    from ..tools import trainer

    completion = run.completion_length
    if not trainer.wanted(run) or (round_tokens := tool_round_tokens(run)) is None:
        return []
    need = round_tokens + MIN_ANSWER_TOKENS
    if completion >= need:
        return []
    return [Problem("trl.max_completion_length", completion,
                    f"too short for one tool round ({round_tokens} tokens with this template: the call, the "
                    f"tool's answer and the next turn's header) and a short answer ({MIN_ANSWER_TOKENS}): the calls, "
                    "the tool turns and the answer share it, and TRL drops a tool turn that does not fit, so the "
                    "model would never see a result.",
                    f"set `trl.max_completion_length: {need}` or more; `axolotl-grpo probe CONFIG` measures what "
                    "the model's rollouts need (GSM8K solutions written as calculator calls are 272 tokens at the "
                    "median and 526 at p95 with SmolLM2's tokenizer, docs/tools.md)")]
