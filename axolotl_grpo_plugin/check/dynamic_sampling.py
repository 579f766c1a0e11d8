"""`grpo_plugin.dynamic_sampling` can run as configured: the trainer it drives, whole groups on every
process, and a training set with prompts enough for a round (training/dynamic_sampling.py)."""

from __future__ import annotations

from ..config.batching import generation_batch_size
from ..config.run import Run
from ..errors import PluginError, Problem
from ..system.launch import Launch
from .trainer import async_key


KEY = "grpo_plugin.dynamic_sampling"


def _value(run: Run) -> dict:
    return run.plugin.dynamic_sampling.model_dump()


def _batch(run: Run, processes: int) -> int:
    """The generation batch, every process's completions (as check/batch.py counts it)."""
    return run.trl.generation_batch_size or generation_batch_size(
        run.micro_batch_size, run.gradient_accumulation_steps, processes)


def round_prompts(run: Run, processes: int) -> int:
    """The prompts one round generates: the generation batch's groups."""
    return _batch(run, processes) // run.trl.num_generations


def check_dynamic_sampling(run: Run, launch: Launch) -> list[Problem]:
    """The async trainer generates in a background thread, which the rounds cannot drive; a
    process's share of the batch must be whole groups, which it fills from its own groups."""
    if run.plugin.dynamic_sampling is None:
        return []
    found = []
    key = async_key(run)
    if key is not None:
        found.append(Problem(KEY, _value(run), f"`trl.{key}` builds Axolotl's async trainer, which generates the "
                             "next batch in a background thread: dynamic sampling cannot generate more rounds "
                             "for the batch it trains.",
                             f"remove `trl.{key}` (generation and training take turns), or remove `{KEY}`"))
    procs = max(int(launch.processes or 1), 1)
    groups, share = run.trl.num_generations, _batch(run, procs) // procs
    if procs > 1 and share % groups:
        fix = (f"set trl.generation_batch_size to a multiple of trl.num_generations x processes = {groups * procs}"
               if run.trl.generation_batch_size else
               f"make micro_batch_size x gradient_accumulation_steps a multiple of trl.num_generations ({groups})")
        found.append(Problem(KEY, _value(run), f"each of the {procs} training processes fills its share of the "
                             f"batch, {share} completions, from its own groups of {groups}: {share} is not a "
                             "whole number of groups.", fix))
    return found


def check_dynamic_sampling_rows(run: Run, launch: Launch) -> list[Problem]:
    """A round draws a generation batch's worth of distinct prompts from the training set: a
    set with fewer rows cannot fill one (local datasets are counted; Hub ids are not read)."""
    from ..sources.dry_run import train_rows
    from .pass_rates import band_rows

    if run.plugin.dynamic_sampling is None:
        return []
    try:
        if run.plugin.pass_rate_filter is not None:  # checked before: its band keeps rows
            rows, where = band_rows(run)[0], f"the pass-rate band of {run.plugin.pass_rate_filter.file}"
        else:
            rows, where = train_rows(run)
    except PluginError:  # a dataset that does not load: check_datasets says why
        return []
    if rows is None:
        return []
    needed = round_prompts(run, max(int(launch.processes or 1), 1))
    if rows >= needed:
        return []
    return [Problem(KEY, _value(run), f"each round generates {needed} prompts (the generation batch / "
                    f"trl.num_generations), but {where} holds {rows}: too few to fill a batch with groups "
                    "that have spread.",
                    f"train on more prompts (at least {needed}; a few times that leaves rounds a choice), "
                    "widen grpo_plugin.pass_rate_filter's band, or lower micro_batch_size x "
                    "gradient_accumulation_steps")]
