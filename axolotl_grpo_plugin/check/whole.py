"""A whole config file checked as `axolotl-grpo check` checks it: the launch it describes (training
processes, GPUs, the autostarted server's), our checks and Axolotl's validation, then the warnings
that need the checked Run (the audit's cheap part, the run lock, the cloud file, remote rewards
reached, threads, a missing vLLM). The command prints; this module only answers or raises."""

from __future__ import annotations

import importlib.util
from typing import Any

from ..audit.check import reward_warnings
from ..config import defaults
from ..config.batching import describe_layout
from ..config.run import Run, read_run
from ..errors import GRPOConfigError, PluginError, Problem, counted
from ..system.launch import Launch, one_thread_warning
from ..system.quiet import captured_stderr
from ..training import run_lock
from ..training.enabled import PLUGIN_NAME, applies, listed, lists_threads_plugin
from . import axolotl_validation, cloud
from .prepare import check_model, checked_run, prepare_config


GPU_CAPABILITIES = {"bf16": True, "fp8": False, "tf32": True, "compute_capability": "sm_90"}
CPU_CAPABILITIES = {"bf16": False, "fp8": False, "tf32": False, "compute_capability": None}


def read_for_check(raw: dict[str, Any]) -> Run:
    """raw's Run, read once for every step of `check`. A config with a wrong value has none: the
    error lists what validate_with_axolotl would (the unlisted plugin, the unknown keys, every
    wrong value)."""
    try:
        return checked_run(raw) if applies(raw) else read_run(raw)
    except GRPOConfigError as exc:
        raise GRPOConfigError(unlisted_problems(raw) + exc.problems) from None


def validate_with_axolotl(raw: dict[str, Any], launch: Launch, run: Run):
    """Our checks, then Axolotl's `validate_config` with the plugins registered. Axolotl (and
    torch, transformers: seconds) is imported only once our checks pass. `run`: raw's
    (`read_for_check`)."""
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault(raw)
    unlisted = unlisted_problems(raw)
    try:
        _, warnings = prepare_config(cfg, launch, run) if applies(cfg) else check_model(run, launch)
    except GRPOConfigError as exc:
        raise GRPOConfigError(unlisted + exc.problems) from None
    if unlisted:
        raise GRPOConfigError(unlisted)
    import torch

    capabilities = dict(GPU_CAPABILITIES if launch.has_gpu else CPU_CAPABILITIES)
    capabilities["n_gpu"] = launch.processes if launch.has_gpu else 0
    env = {"torch_version": str(torch.__version__).split("+", maxsplit=1)[0]}
    return axolotl_validation.validate(cfg, capabilities, env), warnings


def unlisted_problems(raw: dict[str, Any]) -> list[Problem]:
    """A GRPO config that does not list the plugin, on an Axolotl that runs only the plugins a
    config lists (0.19/0.20): `axolotl train` would run without it, so nothing checked here holds."""
    if defaults.AXOLOTL.loads_installed_plugins or not applies(raw) or listed(raw):
        return []
    return [Problem("plugins", raw.get("plugins"), f"{defaults.AXOLOTL_NAME} runs only the plugins a config lists, "
                    "so `axolotl train` would run without this one: no reward or dataset names of ours, none of "
                    "these checks, no vLLM autostart.", f"add `plugins: [{PLUGIN_NAME}]` at the top level")]


def layout_line(run: Run, processes: int) -> str:
    """The generation-batch arithmetic for this launch, e.g. `8 x 2 x 7 = 112 = 7 prompts x 16`."""
    return "micro_batch_size x gradient_accumulation_steps x processes: " + describe_layout(
        run.micro_batch_size, run.gradient_accumulation_steps, processes, run.trl.num_generations,
        run.trl.generation_batch_size)


def default_gpus(run: Run, processes: int, has_gpu: bool) -> int:
    """The GPUs a launch of `processes` trainers needs: theirs, plus the autostarted server's."""
    if not has_gpu:
        return 0
    if not run.plugin.vllm_autostart:
        return processes
    return processes + run.server_gpus


def too_few_gpus(gpus: int, run: Run, processes: int, cloud_file: str | None = None) -> None:
    """A GPU launch with fewer GPUs than its training processes (plus the autostarted vLLM
    server's GPUs): a PluginError naming where the count came from (--gpus, or the cloud file's
    gpu_count), what the launch needs, and the fix."""
    needed = default_gpus(run, processes, True)
    if gpus >= needed:
        return
    server = needed - processes
    why = (f"the launch needs {counted(needed, 'GPU')}: one per training process ({processes})"
           + (f" plus {server} for the autostarted vLLM server (grpo_plugin.vllm_autostart)" if server else ""))
    field, fix = ((f"gpu_count in {cloud_file}", f"set `gpu_count: {needed}` (or more) in {cloud_file}")
                  if cloud_file else ("--gpus", f"pass --gpus {needed} (or more)"))
    raise PluginError([Problem(field, str(gpus), f"too few GPUs: {why}.", f"{fix}, or fewer --processes")])


def reach_remote(run: Run) -> tuple[list[str], PluginError | None]:
    """Each remote reward's endpoint reached once: what it answered, and the problems it showed."""
    from ..remote.reach import reach

    lines, problems = [], []
    for i, spec in enumerate(run.plugin.remote_rewards or []):
        line, problem = reach(spec, i)
        lines.append(line)
        if problem is not None:
            problems.append(problem)
    return lines, GRPOConfigError(problems) if problems else None


def validate_launch(raw: dict[str, Any], processes: int, has_gpu: bool, gpus: int | None, gpus_given: int | None,
                    cloud_file: str | None = None) -> tuple[Run, Launch, list[str], str | None]:
    """The Run (read once), the launch `processes` trainers on `gpus` (default: what they and the
    autostarted server need) make, our checks' and Axolotl's warnings, and the batch layout line
    (None for a config that is not GRPO). `cloud_file`: the launch's GPU count came from it."""
    run = read_for_check(raw)  # the one reading; a wrong value ends the check here
    gpus = default_gpus(run, processes, has_gpu) if gpus is None else gpus
    launch = Launch(processes, has_gpu, gpus=tuple(str(i) for i in range(gpus)), machine_gpus=gpus)
    if cloud_file is not None and gpus_given is None:  # the cloud file's count to fix
        too_few_gpus(gpus, run, processes, cloud_file)
    _, warnings = validate_with_axolotl(raw, launch, run)
    if has_gpu and gpus_given is not None:  # after the config's own checks: theirs name the key
        too_few_gpus(gpus_given, run, processes)
    return run, launch, warnings, layout_line(run, processes) if applies(raw) else None


def after_validation(raw: dict[str, Any], run: Run, layout: str | None, *, has_gpu: bool, cloud_cfg: dict | None,
                     cloud_file: str | None, offline: bool, quiet: bool) -> list[str]:
    """The warnings that need the validated Run; a remote reward that answers wrong raises."""
    with captured_stderr(enabled=quiet):
        warnings = list(reward_warnings(raw, run))  # the audit's cheap part (axolotl-grpo audit)
    output_dir = run.output_dir
    busy = None if cloud_cfg is not None else run_lock.holder(output_dir)  # a cloud run starts elsewhere
    if cloud_cfg is not None:
        warnings += cloud.warnings(cloud_cfg, cloud_file, output_dir)
    if busy is not None:  # `axolotl train` would stop on it now; it may be free by launch time
        warnings += [p.line() for p in run_lock.in_use(output_dir, busy).problems]
    if not offline:
        reached, failure = reach_remote(run)
        if failure is not None:
            raise failure
        warnings += reached
    if not has_gpu and cloud_cfg is None and layout is None and not lists_threads_plugin(raw) \
            and (threads := one_thread_warning()):
        warnings.append(threads)
    if has_gpu and run.trl.use_vllm and importlib.util.find_spec("vllm") is None:
        warnings.append("trl.use_vllm is on and vLLM is not installed here: checked without it; install "
                        "it where you train (`pip install 'axolotl-grpo-plugin[vllm]'`, or `axolotl[vllm]`).")
    return warnings
