"""What the trainer will be asked to do: GRPO itself, TRL options passed through, the async trainer, the
trackers, the held-out evaluations."""

from __future__ import annotations

from ..config import defaults, trl_args
from ..config.run import Run
from ..errors import Problem
from ..system.launch import Launch


def check_rl(run: Run, launch: Launch) -> list[Problem]:
    if run.rl == "grpo":
        return []
    return [Problem("rl", run.rl, "the GRPO plugin is enabled but the config does not train with GRPO; "
                    "rewards would be ignored.", "set `rl: grpo`")]


def check_trl_args(run: Run, launch: Launch) -> list[Problem]:
    return trl_args.check(run)


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
    from ..training.cpu_bf16 import bf16_units, wanted

    if run.half_precision or wanted(run.plugin.cpu_bf16, bf16_units()):  # bfloat16 compute, asked for
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


def check_eval_at_end(run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.eval_at_end` can find its held-out rows."""
    from ..evaluate.hook import config_problems

    return config_problems(run)


def check_eval_every(run: Run, launch: Launch) -> list[Problem]:
    """`grpo_plugin.eval_every` finds its held-out rows; `keep_best` names a metric it logs."""
    from ..evaluate.periodic_config import config_problems

    return config_problems(run)
