"""`prepare_config`: every check, in one order, for `check` and `axolotl train` alike (check = train:
whatever training refuses before the model loads, `check` refuses too); the fills; the warnings."""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from typing import Any

from ..config import defaults
from ..config.run import Run, read_run
from ..config.unknown_keys import unknown_key_problems, unknown_top_level_warnings
from ..errors import GRPOConfigError, Problem
from ..names import resolve_names
from ..sources import dry_run
from ..system.launch import Launch
from ..training.enabled import only_ours
from ..vllm.cpu import check_cpu_vllm
from ..watch.sync_guard import check_sleep_mode
from .batch import check_batch, check_completion_length, fill_generation_batch_size
from .code import check_code_sandbox
from .dynamic_sampling import check_dynamic_sampling, check_dynamic_sampling_rows
from .files import (
    check_datasets,
    check_end_of_turn,
    check_model_folder,
    check_output_dir,
    check_paths,
    check_resume,
    resume_from_last_whole,
)
from .hardware import (
    check_context_fits,
    check_gpu_layout,
    check_precision,
    check_vllm_autostart,
    fill_vllm_server_address,
    precision_warnings,
)
from .pass_rates import check_pass_rate_filter, pass_rate_notes
from .rewards import check_overlong_cache, check_remote_rewards, check_reward_funcs, check_reward_weights
from .tools import check_tool_room, check_tool_template, check_tools, check_tools_async
from .trainer import (
    async_grpo_warnings,
    check_async_grpo,
    check_eval_at_end,
    check_eval_every,
    check_rl,
    check_trackio,
    check_trl_args,
)


CHECKS: tuple[Callable[[Run, Launch], list[Problem]], ...] = (
    check_rl, check_completion_length, check_batch, check_precision, check_reward_funcs, check_reward_weights,
    check_overlong_cache,
    check_trl_args, check_remote_rewards, check_vllm_autostart, check_gpu_layout, check_sleep_mode, check_cpu_vllm,
    check_trackio, check_async_grpo, check_paths, check_output_dir, check_model_folder, check_eval_at_end,
    check_eval_every, check_resume, check_tools, check_tools_async, check_dynamic_sampling, check_pass_rate_filter,
    check_code_sandbox,
)


# The checks that load a tokenizer or `datasets` (seconds): they run once the checks above pass,
# so a misspelled reward is answered at once.
LIBRARY_CHECKS: tuple[Callable[..., list[Problem]], ...] = (
    check_end_of_turn, check_datasets, check_context_fits, check_tool_template, check_tool_room,
    check_dynamic_sampling_rows,
)
# Those that run the config's dataset transforms, which take the whole config (as Axolotl calls them).
TRANSFORM_CHECKS = (check_datasets, check_context_fits)


def check_model(run: Run, launch: Launch) -> tuple[Run, list[str]]:
    """What `check` runs on a config the plugin does not train (an SFT cold start): the model
    itself, and the precision a CPU run crashes on; raises on problems (prepare_config's shape)."""
    problems = [*check_paths(run, launch), *check_model_folder(run, launch),
                *check_precision(run, launch, ours=False), *check_end_of_turn(run, launch)]
    if problems:
        raise GRPOConfigError(problems)
    return run, []


def checked_run(cfg: Mapping[str, Any]) -> Run:
    """The config's Run, read once by the caller before prepare_config (register, `check`). A config
    with a wrong value has none: one error lists the unknown keys and every wrong value, as
    prepare_config lists its problems."""
    try:
        return read_run(cfg)
    except GRPOConfigError as exc:
        raise GRPOConfigError(unknown_key_problems(cfg, not only_ours(cfg)) + exc.problems) from None


def prepare_config(cfg: MutableMapping[str, Any], launch: Launch, run: Run) -> tuple[Run, list[str]]:
    """Resolve names, check everything and apply the fills; returns the Run (as Axolotl will read
    the config) and the warnings, or raises one error listing every problem. `run`: the config's
    Run (`checked_run(cfg)`)."""
    problems = unknown_key_problems(cfg, not only_ours(cfg))
    run, unresolved = resolve_names(cfg, run)
    problems = unresolved + problems
    for check in CHECKS:
        problems.extend(p for p in check(run, launch) if p not in problems)
    for check in () if problems else LIBRARY_CHECKS:
        problems.extend(check(cfg, run, launch) if check in TRANSFORM_CHECKS else check(run, launch))
    if problems:
        raise GRPOConfigError(problems)
    run = fill_generation_batch_size(cfg, fill_vllm_server_address(cfg, run), launch)
    warnings = dry_run.skipped(run)
    warnings.extend(unknown_top_level_warnings(cfg, not only_ours(cfg)))
    warnings.extend(async_grpo_warnings(run))
    warnings.extend(pass_rate_notes(run))
    warnings.extend(precision_warnings(run, launch))
    run, resumed = resume_from_last_whole(cfg, run)
    warnings.extend(resumed)
    if run.trl.use_vllm and not run.trl.vllm_mode:
        warnings.append(f"`trl.use_vllm` is on without `trl.vllm_mode`: {defaults.TRL_NAME} then runs vLLM colocated "
                        "on the training GPU. Set `trl.vllm_mode: server` to use a separate vLLM server.")
    if run.sequence_len is not None:
        warnings.append(f"`sequence_len` has no effect on GRPO in {defaults.AXOLOTL_NAME}; completion length is "
                        "`trl.max_completion_length` and vLLM's limit is `vllm.max_model_len`.")
    return run, warnings
