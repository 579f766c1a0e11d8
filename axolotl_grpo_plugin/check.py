"""Check a GRPO config without loading a model: `python -m axolotl_grpo_plugin.check CONFIG`.

Runs the plugin's checks (the same ones `axolotl train` runs before the model
loads: values, batch arithmetic, rewards, local datasets and their transforms,
the vLLM autostart GPU layout), then Axolotl's own schema validation with the
plugin merged in, for the launch you describe (GPU or CPU, training processes,
visible GPUs). Nothing is downloaded and no GPU is needed, so a config can be
checked on a laptop before renting the GPUs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from . import defaults, run_lock
from .config.batching import describe_layout
from .config.checks import prepare_config
from .config.load import read_yaml, section
from .errors import EXIT_BAD_INPUT, PluginError, exit_for
from .launch import Launch
from .quiet import captured_stderr


GPU_CAPABILITIES = {"bf16": True, "fp8": False, "tf32": True, "compute_capability": "sm_90"}
CPU_CAPABILITIES = {"bf16": False, "fp8": False, "tf32": False, "compute_capability": None}


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The config file through the one config reader (config/load.py)."""
    return read_yaml(path)


def validate_with_axolotl(raw: dict[str, Any], launch: Launch):
    """Our checks, then Axolotl's `validate_config` with the plugins registered."""
    import torch
    from axolotl.integrations.base import PluginManager
    from axolotl.utils.config import validate_config
    from axolotl.utils.dict import DictDefault

    cfg = DictDefault(raw)
    warnings = prepare_config(cfg, launch)
    manager = PluginManager.get_instance()
    for name in cfg.get("plugins") or []:
        manager.register(name)
    capabilities = dict(GPU_CAPABILITIES if launch.has_gpu else CPU_CAPABILITIES)
    capabilities["n_gpu"] = launch.processes if launch.has_gpu else 0
    env = {"torch_version": str(torch.__version__).split("+", maxsplit=1)[0]}
    return validate_config(cfg, capabilities=capabilities, env_capabilities=env), warnings


def layout_line(raw: dict[str, Any], processes: int) -> str:
    """The generation-batch arithmetic for this launch, e.g. `8 x 2 x 7 = 112 = 7 prompts x 16`."""
    trl = section(raw, "trl")
    return "micro_batch_size x gradient_accumulation_steps x processes: " + describe_layout(
        int(raw.get("micro_batch_size") or 1), int(raw.get("gradient_accumulation_steps") or 1),
        processes, int(trl.get("num_generations") or defaults.NUM_GENERATIONS),
        trl.get("generation_batch_size"))


def default_gpus(raw: dict[str, Any], processes: int, has_gpu: bool) -> int:
    """The GPUs a launch of `processes` trainers needs: theirs, plus the autostarted server's."""
    from .args import settings
    from .config.values import read
    from .errors import GRPOConfigError

    if not has_gpu:
        return 0
    try:
        autostart = settings(raw).vllm_autostart
    except GRPOConfigError:
        autostart = False  # the checks report the bad value
    if not autostart:
        return processes
    server = (read(raw, "vllm.tensor_parallel_size", 1) or 1) * (read(raw, "vllm.data_parallel_size", 1) or 1)
    return processes + server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m axolotl_grpo_plugin.check",
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
    parser.add_argument("--processes", type=int, default=1,
                        help="training processes (GPUs running the trainer, not the vLLM one); "
                        "default 1")
    parser.add_argument("--gpus", type=int, default=None,
                        help="GPUs the launch sees, for the vLLM autostart layout (which GPU the server "
                        "gets, whether the training processes fit beside it); default: --processes, plus "
                        "the server's GPUs when grpo_plugin.vllm_autostart is on; 0 with --cpu")
    parser.add_argument("--verbose", action="store_true",
                        help="also show what torch, bitsandbytes and Axolotl print while loading")
    args = parser.parse_args(argv)
    if args.processes < 1 or (args.gpus is not None and args.gpus < 0):
        parser.error("--processes must be 1 or more and --gpus 0 or more")
    failure: Exception | None = None
    with captured_stderr(enabled=not args.verbose):  # third-party import chatter
        if args.has_gpu is None:
            import torch

            args.has_gpu = torch.cuda.is_available()
        try:
            raw = load_yaml(args.config)
            gpus = default_gpus(raw, args.processes, args.has_gpu) if args.gpus is None else args.gpus
            launch = Launch(args.processes, args.has_gpu, gpus=tuple(str(i) for i in range(gpus)),
                            machine_gpus=gpus)
            _, warnings = validate_with_axolotl(raw, launch)
            layout = layout_line(raw, args.processes)
        except Exception as exc:  # reported below, once stderr is the terminal again
            failure = exc
    if isinstance(failure, PluginError):
        return exit_for(failure)
    if failure is not None:  # Axolotl's own validation: show its message, not a traceback
        print(f"Axolotl rejected {args.config}: {failure}", file=sys.stderr)
        return EXIT_BAD_INPUT
    output_dir = run_lock.configured_output_dir(raw)
    busy = run_lock.holder(output_dir)
    if busy is not None:  # `axolotl train` would stop on it now; it may be free by launch time
        warnings = [*warnings, *(p.line() for p in run_lock.in_use(output_dir, busy).problems)]
    for warning in warnings:
        print(f"warning: {warning}")
    where = "GPU" if args.has_gpu else "CPU"
    seen = f", {len(launch.gpus)} GPU(s) visible" if args.has_gpu else ""
    print(f"OK: {args.config} is valid for {args.processes} training process(es) on {where}{seen}.")
    print(f"layout: {layout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
