"""Will this GRPO config fit? `axolotl-grpo plan CONFIG --gpu-type L40S`

Estimates, per training process, the weights, gradients, optimizer state,
reference model, activations and logits, and for the vLLM GPU the weights plus
the KV cache the generation batch wants. Prints a verdict per GPU and the
changes that save the most memory. No GPU is needed and nothing is downloaded
(except what --from-data asks the stats module to fetch).
The estimates are arithmetic (docs/scaling.md); for one process with transformers generation they were
within 3 % of the peaks `axolotl-grpo gpu-check` measured on an H200.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..errors import PluginError
from ..plan.dims import UnknownModel
from ..plan.gpus import GPUS, UnknownGPU, find_gpu, gpu_from_memory
from ..plan.report import PlanError, as_json, build, format_plan
from .flags import at_least, exit_for, prog, renamed


EPILOG = """examples:
  axolotl-grpo plan configs/gsm8k.yaml --gpu-type L40S
  axolotl-grpo plan configs/gsm8k-8gpu-zero3.yaml --gpu-type H100 --gpu-type A100-40GB
  axolotl-grpo plan configs/gsm8k.yaml --gpu-memory 48 --processes 1
  axolotl-grpo stats configs/gsm8k.yaml --json > stats.json
  axolotl-grpo plan configs/gsm8k.yaml --stats stats.json
  axolotl-grpo plan configs/smoke.yaml --from-data --gpu-memory 8
  axolotl-grpo plan my.yaml --dims hidden=2048,layers=24,vocab=32000,intermediate=5632,heads=16,kv_heads=4

without --gpu, the verdict is printed for every GPU in the built-in table.
prompt length: --prompt-tokens, else --stats (max prompt), else --from-data (measured now),
else vllm.max_model_len - trl.max_completion_length, else 263 (longest GSM8K train prompt,
Qwen2.5 template)."""


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog("plan"), description=__doc__,
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", help="the Axolotl GRPO yaml")
    p.add_argument("--gpu-type", action="append", default=[], metavar="NAME",
                   help=f"GPU to check (repeatable): {', '.join(g.name for g in GPUS.values())}")
    renamed(p, "--gpu", "--gpu-type", action="append")  # --gpu is a switch in `check`
    p.add_argument("--gpu-memory", type=float, action="append", default=[], metavar="GIB",
                   help="check a GPU of this many GiB instead of a named one (repeatable)")
    p.add_argument("--processes", type=at_least(1, "e.g. --processes 2 (one per training GPU)"),
                   help="training processes (default: the config's `# Processes:` header, else 1)")
    p.add_argument("--prompt-tokens", type=at_least(1, "e.g. --prompt-tokens 300, or --from-data to measure it"),
                   help="longest prompt in tokens")
    p.add_argument("--from-data", action="store_true",
                   help="measure the longest prompt with the stats module (the config's tokenizer, "
                   "template, dataset and transform; fetches them if they are not local)")
    p.add_argument("--stats", metavar="FILE", help="`axolotl-grpo stats CONFIG --json` output to take the longest prompt from")
    p.add_argument("--dims", help="model shapes when base_model is not local or in the built-in table: "
                   "hidden=,layers=,vocab=,intermediate=,heads=,kv_heads= (optional head_dim=, tied=1)")
    p.add_argument("--no-vllm", action="store_true",
                   help="plan as if generation ran in the trainer with transformers (trl.use_vllm: false)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        gpus = [find_gpu(name) for name in args.gpu_type] + [gpu_from_memory(m) for m in args.gpu_memory]
        workload, _, dims_source, prompt_source, model = build(args)
    except PluginError as exc:
        return exit_for(exc)
    except (UnknownGPU, UnknownModel) as exc:
        return exit_for(PlanError(str(exc)))
    shown = gpus or list(GPUS.values())
    if args.json:
        print(json.dumps(as_json(workload, shown), indent=2))
    else:
        print(format_plan(workload, shown, (args.config, model, dims_source, prompt_source)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
