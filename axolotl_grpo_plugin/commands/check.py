"""Check a GRPO config without loading a model: `axolotl-grpo check CONFIG`.

Runs the plugin's checks (the same ones `axolotl train` runs before the model
loads: values, batch arithmetic, rewards, local datasets and their transforms,
the vLLM autostart GPU layout), then Axolotl's own schema validation with the
plugin merged in, for the launch you describe (GPU or CPU, training processes,
visible GPUs). Nothing is downloaded and no GPU is needed, so a config can be
checked on a laptop before renting the GPUs. With local datasets it also runs the
reward audit's cheap part on a few prompts and warns about a hackable reward
(`axolotl-grpo audit CONFIG` is the full pass).
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from ..audit.check import reward_warnings
from ..check import axolotl_validation, cloud
from ..check.prepare import check_model, checked_run, prepare_config
from ..config import defaults
from ..config.batching import describe_layout
from ..config.load import declared_processes, read_config
from ..config.run import Run, read_run
from ..errors import EXIT_BAD_INPUT, GRPOConfigError, PluginError, Problem, counted, exit_for
from ..system.launch import Launch, has_cuda_gpu, one_thread_warning
from ..system.quiet import captured_stderr
from ..training import run_lock
from ..training.enabled import PLUGIN_NAME, applies, listed, lists_threads_plugin
from .flags import at_least, prog


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("check"),
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples (from a checkout; after `axolotl-grpo configs DIR`, the same with DIR/):\n"
        "  axolotl-grpo check configs/gsm8k.yaml --gpu --processes 1\n"
        "  axolotl-grpo check configs/smoke.yaml --cpu",
    )
    parser.add_argument("config", help="the Axolotl yaml you will pass to `axolotl train`")
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--gpu", dest="has_gpu", action="store_true", default=None,
                        help="check for a GPU machine (the default when this machine has one)")
    target.add_argument("--cpu", dest="has_gpu", action="store_false",
                        help="check for a CPU-only run")
    parser.add_argument("--processes", type=at_least(1, "e.g. --processes 2 (one per training GPU)"), default=None,
                        help="training processes (GPUs running the trainer, not the vLLM one); default: "
                        "the config's `# Processes: N` comment on a GPU launch (the shipped multi-GPU configs "
                        "have one), else 1")
    parser.add_argument("--gpus", type=at_least(0, "the GPUs the launch sees, e.g. --gpus 2"), default=None,
                        help="GPUs the launch sees, for the vLLM autostart layout (which GPU the server "
                        "gets, whether the training processes fit beside it); default: --processes, plus "
                        "the server's GPUs when grpo_plugin.vllm_autostart is on; 0 with --cpu")
    parser.add_argument("--offline", action="store_true",
                        help="do not reach the endpoints of grpo_plugin.remote_rewards (by default each "
                        "is reached once and what it answered is shown)")
    parser.add_argument("--base-model", "--base_model", metavar="DIR",
                        help="check with this base_model, as `axolotl train CONFIG --base-model DIR` trains "
                        "(e.g. the folder `axolotl-grpo fetch-model` wrote)")
    parser.add_argument("--cloud", metavar="CLOUD_YAML",
                        help="check for `axolotl train CONFIG --cloud CLOUD_YAML` (Modal): a GPU launch with its "
                        "gpu_count, and a warning when output_dir is not on one of its volumes")
    parser.add_argument("--verbose", action="store_true",
                        help="also show what torch, bitsandbytes and Axolotl print while loading")
    args = parser.parse_args(argv)
    if args.has_gpu is False and args.gpus:
        parser.error(f"argument --gpus: {args.gpus} GPUs with --cpu, which uses none. Fix: drop --gpus, "
                     "or check a GPU launch with --gpu")
    gpus_given = args.gpus
    failure: Exception | None = None
    with captured_stderr(enabled=not args.verbose):  # third-party import chatter
        try:
            cloud_cfg = cloud.read_cloud(args.cloud) if args.cloud else None
            if args.has_gpu is None:
                args.has_gpu = cloud_cfg is not None or has_cuda_gpu()
            if cloud_cfg is not None and args.gpus is None:
                args.gpus = cloud.gpu_count(cloud_cfg)
            raw, text = read_config(args.config)  # its path recorded as `axolotl train` records it
            declared = declared_processes(text) if args.has_gpu else None
            processes_from = "" if args.processes else f" (its `# Processes: {declared}` comment)" if declared else ""
            args.processes = args.processes or declared or 1
            if args.base_model:
                raw["base_model"] = args.base_model
            run = read_for_check(raw)  # the one reading; a wrong value ends the check here
            gpus = default_gpus(run, args.processes, args.has_gpu) if args.gpus is None else args.gpus
            launch = Launch(args.processes, args.has_gpu, gpus=tuple(str(i) for i in range(gpus)),
                            machine_gpus=gpus)
            if cloud_cfg is not None and gpus_given is None:  # the cloud file's count to fix
                too_few_gpus(gpus, run, args.processes, args.cloud)
            _, warnings = validate_with_axolotl(raw, launch, run)
            if args.has_gpu and gpus_given is not None:  # after the config's own checks: theirs name the key
                too_few_gpus(gpus_given, run, args.processes)
            layout = layout_line(run, args.processes) if applies(raw) else None
        except Exception as exc:  # reported below, once stderr is the terminal again
            failure = exc
    if isinstance(failure, PluginError):
        return exit_for(failure)
    if failure is not None:  # Axolotl's own validation: show its message, not a traceback
        print(f"Axolotl rejected {args.config}: {failure}", file=sys.stderr)
        return EXIT_BAD_INPUT
    with captured_stderr(enabled=not args.verbose):
        warnings = [*warnings, *reward_warnings(raw, run)]  # the audit's cheap part (axolotl-grpo audit)
    output_dir = run.output_dir
    busy = None if cloud_cfg is not None else run_lock.holder(output_dir)  # a cloud run starts elsewhere
    if cloud_cfg is not None:
        warnings = [*warnings, *cloud.warnings(cloud_cfg, args.cloud, output_dir)]
    if busy is not None:  # `axolotl train` would stop on it now; it may be free by launch time
        warnings = [*warnings, *(p.line() for p in run_lock.in_use(output_dir, busy).problems)]
    if not args.offline:
        reached, failure = reach_remote(run)
        if failure is not None:
            return exit_for(failure)
        warnings = [*warnings, *reached]
    if not args.has_gpu and cloud_cfg is None and layout is None and not lists_threads_plugin(raw) \
            and (threads := one_thread_warning()):
        warnings = [*warnings, threads]
    if args.has_gpu and run.trl.use_vllm and importlib.util.find_spec("vllm") is None:
        warnings = [*warnings, "trl.use_vllm is on and vLLM is not installed here: checked without it; install "
                    "it where you train (`pip install 'axolotl-grpo-plugin[vllm]'`, or `axolotl[vllm]`)."]
    for warning in warnings:
        print(warning if warning.startswith("remote reward") else f"warning: {warning.removeprefix('warning: ')}")
    where = "GPU" if args.has_gpu else "CPU"
    seen = f", {counted(len(launch.gpus), 'GPU')} visible" if args.has_gpu else ""
    if layout is None:  # SFT, DPO, ...: only the model checks and Axolotl's apply
        print(f"OK: {args.config} is valid on {where} (not a GRPO config: the model checks and Axolotl's "
              "validation ran).")
        return 0
    print(f"OK: {args.config} is valid for {counted(args.processes, 'training process', 'training processes')}"
          f"{processes_from} on {where}{seen}.")
    print(f"layout: {layout}")
    return 0


