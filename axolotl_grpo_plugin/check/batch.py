"""The batch arithmetic TRL and Axolotl need: completion length, the generation batch and its groups, the
evaluation batch; and the generation batch Axolotl 0.19 needs written out."""

from __future__ import annotations

import math

from ..config import defaults
from ..config.batching import generation_batch_size, micro_batch_sizes_for, valid_num_generations
from ..config.run import Run, write
from ..errors import Problem
from ..system.launch import Launch


def check_completion_length(run: Run, launch: Launch) -> list[Problem]:
    if run.trl.max_completion_length is not None:
        return []
    return [Problem("trl.max_completion_length", None,
                    "without it every completion may run to the model's length limit: slow, and "
                    "vLLM rejects prompts that no longer fit.",
                    "set it (512 suits GSM8K); `axolotl-grpo stats CONFIG` checks it against vllm.max_model_len")]


def check_batch(run: Run, launch: Launch) -> list[Problem]:
    """TRL: num_generations divides the generation batch. Axolotl 0.19 also wants at least
    one whole group per training process (batch >= num_generations x processes)."""
    groups, mbs, gas = run.trl.num_generations, run.micro_batch_size, run.gradient_accumulation_steps
    explicit = run.trl.generation_batch_size
    if launch.processes is None:
        return []
    procs = max(int(launch.processes), 1)
    step_batch = mbs * procs
    if explicit:
        if explicit % step_batch:
            return [Problem("trl.generation_batch_size", explicit,
                            f"must be a multiple of micro_batch_size x training processes = {mbs} x {procs} = {step_batch}.",
                            f"set it to a multiple of {step_batch}, e.g. {_at_least(step_batch, explicit)}")]
        batch, formula = explicit, f"trl.generation_batch_size = {explicit}"
    else:
        batch = generation_batch_size(mbs, gas, procs)
        formula = (f"micro_batch_size x gradient_accumulation_steps x training processes = "
                   f"{mbs} x {gas} x {procs} = {batch}")
    if batch % groups:
        choices = valid_num_generations(batch, processes=procs)
        fixes = [f"set trl.num_generations to one of {choices}"] if choices else []
        if explicit:
            fixes.append(f"or trl.generation_batch_size to a multiple of {math.lcm(groups, step_batch)}")
        else:
            fixes.append(f"or micro_batch_size to one of {micro_batch_sizes_for(groups, gas, procs)}")
        return [Problem("trl.num_generations", groups, f"must divide the generation batch, {formula}.",
                        "set " + ", ".join(fixes).removeprefix("or ").removeprefix("set "))]
    if batch < groups * procs:
        need = _at_least(math.lcm(groups, step_batch), groups * procs)
        fix = (f"set trl.generation_batch_size to {need}" if explicit else
               f"set gradient_accumulation_steps to {need // step_batch} ({mbs} x {need // step_batch} x "
               f"{procs} = {need})")
        return [Problem("trl.generation_batch_size" if explicit else "gradient_accumulation_steps",
                        explicit or gas,
                        f"{defaults.AXOLOTL_NAME} wants at least one group of {groups} completions per training "
                        f"process: {formula} < {groups} x {procs} = {groups * procs}.", fix)]
    return check_eval_batch(run, groups, procs)


def _at_least(multiple: int, floor: int) -> int:
    return multiple * max(1, -(-floor // multiple))


def check_eval_batch(run: Run, groups: int, procs: int) -> list[Problem]:
    """TRL also groups evaluation completions: eval_batch_size x processes must divide, when it
    evaluates (GRPOConfig checks it only then)."""
    if not run.evaluates_while_training:
        return []
    eval_groups = run.trl.num_generations_eval or groups
    eval_mbs = run.eval_batch_size or run.micro_batch_size
    if (eval_mbs * procs) % eval_groups == 0:
        return []
    fits = micro_batch_sizes_for(eval_groups, 1, procs)
    return [Problem("eval_batch_size", eval_mbs,
                    f"evaluation needs eval_batch_size x training processes = {eval_mbs} x {procs} = "
                    f"{eval_mbs * procs} to be divisible by num_generations {eval_groups}.",
                    f"set eval_batch_size to one of {fits}")]


def fill_generation_batch_size(cfg, run: Run, launch: Launch) -> Run:
    """Set `trl.generation_batch_size` to TRL's own default, mbs x gas x processes.

    Axolotl 0.19's check_grpo_batch_size_divisibility compares the PER-RANK
    mbs x gas with num_generations x processes, so it rejects valid multi-GPU
    layouts (7 processes x 8 x 2 = 112 = 7 groups of 16 fails: 16 < 112). With the
    global value set explicitly it checks what TRL needs. Same batch, same
    behaviour: TRL derives steps_per_generation = gas from it."""
    procs = max(int(launch.processes or 1), 1)
    if procs == 1 or run.trl.generation_batch_size or run.trl.steps_per_generation:
        return run
    return write(cfg, run, {"trl.generation_batch_size": generation_batch_size(
        run.micro_batch_size, run.gradient_accumulation_steps, procs)})
