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
import sys

from ..check import cloud
from ..check.whole import after_validation, validate_launch
from ..config.load import declared_processes, read_config
from ..errors import EXIT_BAD_INPUT, PluginError, counted
from ..system.launch import has_cuda_gpu
from ..system.quiet import captured_stderr
from .flags import at_least, exit_for, prog


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
            run, launch, warnings, layout = validate_launch(raw, args.processes, args.has_gpu, args.gpus,
                                                            gpus_given, cloud_file=args.cloud if cloud_cfg else None)
        except Exception as exc:  # reported below, once stderr is the terminal again
            failure = exc
    if isinstance(failure, PluginError):
        return exit_for(failure)
    if failure is not None:  # Axolotl's own validation: show its message, not a traceback
        print(f"Axolotl rejected {args.config}: {failure}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        warnings = [*warnings, *after_validation(raw, run, layout, has_gpu=args.has_gpu, cloud_cfg=cloud_cfg,
                                                 cloud_file=args.cloud, offline=args.offline, quiet=not args.verbose)]
    except PluginError as exc:
        return exit_for(exc)
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


