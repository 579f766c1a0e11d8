"""The run doctor: reads each logging step's metrics and names a failing run in plain words.

GRPO fails quietly: a run whose completions are all truncated, or whose groups all
score the same, trains for hours with advantage 0 and no error. Each known failure
leaves a signature in what TRL 1.9 already logs (`completions/clipped_ratio`,
`frac_reward_zero_std`, `entropy`, `grad_norm`, `loss`, `completions/mean_length`)
and in the plugin's `observe/*`, `memory/*` and `tools/*` metrics. `Doctor.observe(logs, step)` checks them
each logging step; a signature that persists `steps` logging steps in a row is
diagnosed once, with the fix. Thresholds: `grpo_plugin.doctor` (args.DoctorSettings),
measured runs in docs/observe.md.

Where a step's time goes (`time/*`, observe/step_time.py) is advice, not a failure: when one
part takes >= half of each step on average (the first logged step, with its warm-up, left out),
`BOUND` names it with the fix that fits; it never stops the run.

Weight-sync drift (`sampling/sampling_logp_difference/*`) is not covered here:
watch/sync_guard.py owns that signature, with its own callback and settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..config import defaults
from ..config.args import DoctorSettings, switched
from ..config.run import Run
from ..rollouts.log import DOCTOR, KIND_FIELD
from ..rollouts.step_clock import ADVISORY, BOUND, BOUND_SHARE
from ..tools import advice
from ..tools.trainer import ERROR_RATE
from .cpu_memory import HEADROOM, PEAK, RSS
from .step_time import METRICS as TIME


LOG = logging.getLogger("axolotl_grpo_plugin.doctor")

CLIPPED = "completions/clipped_ratio"
ZERO_STD = "frac_reward_zero_std"
ENTROPY = "entropy"
GRAD_NORM = "grad_norm"
LOSS = "loss"
MEAN_LENGTH = "completions/mean_length"
FORMAT = "observe/format_strict"
ACCURACY = "observe/accuracy"
DEGENERATE = "observe/degenerate_reinforced"  # observe/trainer_hook.py, from rollouts/scan.py
TOOL_CALLS = "tools/call_frequency"  # TRL: calls per completion (runs with grpo_plugin.tools)
TOOL_FAILURES = "tools/failure_frequency"  # TRL: the share of calls that raised
# dynamic sampling (training/dynamic_sampling.py): TRL's frac_reward_zero_std then counts every
# round's groups, the trained batch's share is its own metric
KEPT, DISCARDED, ZERO_STD_TRAINED = "sampling/groups_kept", "sampling/groups_discarded", "sampling/zero_std_trained"

# signature -> (what it means, the fix); the figures of the step are prepended.
ADVICE = {
    "truncation": (
        "most completions hit trl.max_completion_length before they end, so the answer (and "
        "every reward that reads it) is cut off",
        "raise `trl.max_completion_length` (`axolotl-grpo probe CONFIG` "
        "recommends one), or set `trl.mask_truncated_completions: true` so cut completions "
        "do not train"),
    "zero_variance": (
        "(almost) every group of completions got identical rewards, so every advantage is 0 "
        "and the step teaches nothing",
        "check that the rewards can vary on this data (a constant reward, a missing column), "
        "raise `trl.num_generations`, or keep prompts the model sometimes solves "
        "(`axolotl-grpo probe CONFIG --write-filtered PATH`)"),
    "groups_set_aside": (
        "most groups set aside: dynamic sampling generated groups whose completions all scored the same "
        "and trained none of them, so most of each step's generation is spent on prompts that teach nothing",
        "easier data (keep the prompts the model sometimes solves: `axolotl-grpo probe CONFIG --prompts all "
        "--pass-rates FILE`, then `grpo_plugin.pass_rate_filter: {file: FILE}`), more generations per prompt "
        "(`trl.num_generations`), or check that the rewards can vary on this data"),
    "entropy_collapse": (
        "the policy's entropy fell to a small fraction of its starting value: it samples "
        "nearly the same completion every time, so groups stop differing",
        "lower `learning_rate`, set `trl.beta` > 0 (KL to the reference), or raise "
        "`trl.temperature`"),
    "format_without_correctness": (
        "the format reward is saturated while answer accuracy has not improved: the model "
        "learned the template, not the task",
        "weight correctness above format (`trl.reward_weights`), check that the correctness "
        "reward reads the answers (gold column, parsing), or use easier prompts"),
    "length_runaway": (
        "completion length keeps growing and more and more completions are cut off",
        "raise `trl.max_completion_length`, set `trl.mask_truncated_completions: true`, or add "
        "a length penalty to the rewards"),
    "reward_hacking": (
        "reward hacking suspected: many of the completions GRPO reinforced look degenerate (text "
        "repeated, lists of numbers, several answers, tags repeated, the prompt copied back)",
        "`axolotl-grpo audit CONFIG` names the reward that pays them, `axolotl-grpo audit --rollouts "
        "OUTPUT_DIR` shows them step by step; cap that reward or make it score one answer span"),
    "tools_never_called": (advice.NEVER_CALLED, advice.NEVER_CALLED_FIX),
    "tool_calls_fail": (advice.MOSTLY_FAIL, advice.MOSTLY_FAIL_FIX),
    "nan_gradients": (
        "the gradient norm or the loss is NaN/inf: the update destroys the weights",
        "lower `learning_rate`, set `max_grad_norm`, and check precision (fp16 overflows: "
        "use bf16 or fp32)"),
    "zero_gradients": (
        "the gradient norm is zero: no update reaches the model",
        "check `frac_reward_zero_std` (all groups equal gives advantage 0 with `trl.beta: 0`), "
        "frozen or unloaded adapter weights, and `learning_rate`"),
    "memory_low": (
        "the machine is nearly out of memory at the trainer's peak: the kernel's OOM killer ends a run "
        "with SIGKILL, without a traceback or a checkpoint of the steps since the last one",
        "train fewer tokens at once (`micro_batch_size` 1, fewer completions a step) or stop what else runs on "
        "the machine; with `grpo_plugin.cpu_release_memory: false`, remove it (its default `auto` makes glibc "
        "give each freed tensor's memory back from the first step at 25 % headroom: the Qwen 0.5B's trainer "
        "then stopped growing, for 1.26x to 1.36x its forward, backward and optimizer time; docs/benchmarks.md) "
        "and resume from the last checkpoint; `grpo_plugin.doctor.stop: true` saves a checkpoint and stops "
        "when this fires"),
}




def prefetch_supported(version: str | None = None) -> bool:
    """Axolotl's `trl.async_prefetch` (and `trl.vllm_sync_interval`, which only its async trainer
    reads) work on the installed Axolotl (`version`: another one); on 0.19/0.20 they break the run
    and `check` refuses them (defaults.AxolotlFacts.async_grpo_works), so they are not advised there."""
    facts = defaults.AXOLOTL if version is None else defaults.pick(defaults._AXOLOTL_ROWS, version)
    return facts.async_grpo_works


def bound_fix(part: str, version: str | None = None) -> str:
    """The fix for a run bound by `part`, for the installed Axolotl."""
    new = prefetch_supported(version)
    if part == "generation":
        return ("generate less or faster: fewer or shorter generations (`trl.num_generations`, "
                "`trl.max_completion_length`), more vLLM GPUs (`vllm.data_parallel_size` or "
                "`vllm.tensor_parallel_size`)" + (", or overlap generation with training: "
                                                   "`trl.async_prefetch: true`" if new else ""))
    if part == "weight_sync":
        return ("push less often: " + ("`trl.vllm_sync_interval: K` (push every K steps; read by "
                                        "Axolotl's async trainer, with `trl.async_prefetch: true`)" if new
                                        else "raise `trl.generation_batch_size` to a multiple of the "
                                        "step's batch (TRL pushes once per generation batch)")
                + ", or keep the vLLM server on the training node (a faster link)")
    if part == "rewards":
        return ("make the rewards faster (`axolotl-grpo score` times each one), or for remote "
                "rewards raise `grpo_plugin.remote_rewards[].concurrency` and keep the cache on")
    return ("train fewer tokens per step (`micro_batch_size`, `trl.max_completion_length`), turn "
            "`gradient_checkpointing` off when memory allows, or use bf16 on GPU")


def _number(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _finite(value: Any) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) else None


@dataclass
class Finding:
    """One diagnosis: where it fired, which signature, the message, and the figures behind it."""

    step: int | None
    signature: str
    message: str
    metrics: dict[str, float | None] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """Its line in the rollout log (read by the report)."""
        return {KIND_FIELD: DOCTOR, "step": self.step, "signature": self.signature,
                "message": self.message, "metrics": self.metrics}


@dataclass
class Doctor:
    """Feed it one logging step at a time; returns the findings that fire at that step."""

    settings: DoctorSettings = field(default_factory=DoctorSettings)
    first: dict[str, float] = field(default_factory=dict)
    streaks: dict[str, int] = field(default_factory=dict)
    fired: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    timed_logs: int = 0  # logs with `time/step`; the first (warm-up) is not in `shares`
    shares: dict[str, list[float]] = field(default_factory=dict)  # part -> its share of each step
    axolotl_version: str | None = None  # None: the installed one (prefetch_supported)

    def observe(self, logs: Mapping[str, Any], step: int | None = None) -> list[Finding]:
        if GRAD_NORM not in logs and CLIPPED not in logs and ZERO_STD not in logs:
            return []  # not a training step's log (eval, the end-of-training summary)
        for key in (ENTROPY, MEAN_LENGTH):
            value = _finite(logs.get(key))
            if value is not None:
                self.first.setdefault(key, value)
        accuracy = _finite(logs.get(ACCURACY))
        if accuracy is not None:
            self.accuracy.append(accuracy)
        self._add_shares(logs)
        out = []
        for signature, (present, figures) in self._signatures(logs).items():
            if present is None:
                continue  # the metric is not logged in this run
            self.streaks[signature] = self.streaks.get(signature, 0) + 1 if present else 0
            needed = {"nan_gradients": 1, "memory_low": 1, "format_without_correctness":
                      max(self.settings.steps, self.settings.format_steps)}.get(signature, self.settings.steps)
            if present and signature not in self.fired and self.streaks[signature] >= needed:
                self.fired.add(signature)
                finding = Finding(step, signature, self._message(signature, figures, needed, step), figures)
                self.findings.append(finding)
                out.append(finding)
        return out

    def _add_shares(self, logs: Mapping[str, Any]) -> None:
        step = _finite(logs.get(TIME["step"]))
        if not step or step <= 0:
            return
        self.timed_logs += 1
        if self.timed_logs > 1:
            for part in BOUND:
                value = _finite(logs.get(TIME[part]))
                if value is not None:
                    self.shares.setdefault(part, []).append(value / step)

    def _signatures(self, logs: Mapping[str, Any]) -> dict[str, tuple[bool | None, dict]]:
        s = self.settings
        clipped, zero = _finite(logs.get(CLIPPED)), _finite(logs.get(ZERO_STD))
        trained_zero = _finite(logs.get(ZERO_STD_TRAINED))  # with dynamic sampling: the trained batch's
        zero_key, zero = (ZERO_STD_TRAINED, trained_zero) if trained_zero is not None else (ZERO_STD, zero)
        kept, discarded = _finite(logs.get(KEPT)), _finite(logs.get(DISCARDED))
        aside = discarded / (kept + discarded) if kept is not None and discarded is not None and kept + discarded else None
        entropy, length = _finite(logs.get(ENTROPY)), _finite(logs.get(MEAN_LENGTH))
        fmt, acc = _finite(logs.get(FORMAT)), _finite(logs.get(ACCURACY))
        grad, loss = _number(logs.get(GRAD_NORM)), _number(logs.get(LOSS))
        found: dict[str, tuple[bool | None, dict]] = {}
        found["truncation"] = (None if clipped is None else clipped >= s.truncation,
                               {CLIPPED: clipped})
        found["zero_variance"] = (None if zero is None else zero >= s.zero_std, {zero_key: zero})
        found["groups_set_aside"] = (None if aside is None else aside >= s.set_aside,
                                     {"share of groups set aside": aside, DISCARDED: discarded, KEPT: kept})
        first_entropy = self.first.get(ENTROPY)
        found["entropy_collapse"] = (
            None if entropy is None or not first_entropy else entropy < s.entropy_ratio * first_entropy,
            {ENTROPY: entropy, "first entropy": first_entropy})
        # accuracy is noisy step to step (4 prompts x 16 in the demo) and the healthy demo's
        # format reaches 0.9 by step 42 while its accuracy creeps up: compare window means of
        # `format_steps` logged values, the last ones against the first ones (docs/observe.md)
        k = s.format_steps
        early = stats_mean(self.accuracy[:k]) if len(self.accuracy) >= 2 * k else None
        recent = stats_mean(self.accuracy[-k:]) if early is not None else None
        found["format_without_correctness"] = (
            None if fmt is None or acc is None or early is None
            else fmt >= s.format_saturated and recent - early <= s.accuracy_gain,
            {FORMAT: fmt, f"accuracy (mean of last {k})": recent, f"accuracy (first {k})": early})
        first_length = self.first.get(MEAN_LENGTH)
        found["length_runaway"] = (
            None if length is None or clipped is None or not first_length
            else length >= s.length_growth * first_length and clipped >= s.length_clipped,
            {MEAN_LENGTH: length, "first mean length": first_length, CLIPPED: clipped})
        degenerate = _finite(logs.get(DEGENERATE))
        found["reward_hacking"] = (None if degenerate is None else degenerate >= s.degenerate_share,
                                   {DEGENERATE: degenerate})
        calls = _finite(logs.get(TOOL_CALLS))
        failing = {TOOL_FAILURES: _finite(logs.get(TOOL_FAILURES)), ERROR_RATE: _finite(logs.get(ERROR_RATE))}
        found["tools_never_called"] = (None if calls is None else calls <= 0, {TOOL_CALLS: calls})
        rates = [v for v in failing.values() if v is not None]
        found["tool_calls_fail"] = (None if calls is None or not rates
                                    else calls > 0 and max(rates) >= advice.MOSTLY_FAIL_SHARE,
                                    {TOOL_CALLS: calls, **failing})
        bad = [v for v in (grad, loss) if v is not None and not math.isfinite(v)]
        found["nan_gradients"] = (None if grad is None and loss is None else bool(bad),
                                  {GRAD_NORM: grad, LOSS: loss})
        found["zero_gradients"] = (None if grad is None or not math.isfinite(grad)
                                   else abs(grad) <= s.zero_grad, {GRAD_NORM: grad})
        headroom = _finite(logs.get(HEADROOM))
        found["memory_low"] = (None if headroom is None else headroom <= s.memory_low,
                               {HEADROOM: headroom, PEAK: _finite(logs.get(PEAK)), RSS: _finite(logs.get(RSS))})
        for part, (signature, _, _) in BOUND.items():
            shares = self.shares.get(part)
            share = stats_mean(shares) if shares else None
            found[signature] = (None if share is None else share >= BOUND_SHARE,
                                {f"mean {TIME[part]} / {TIME['step']}": share,
                                 "logged steps averaged (the first, warm-up, left out)": float(len(shares or ()))})
        return found

    def _message(self, signature: str, figures: dict, needed: int, step: int | None = None) -> str:
        part = next((p for p, (sig, _, _) in BOUND.items() if sig == signature), None)
        if part is not None:
            _, verdict, doing = BOUND[part]
            share = next(iter(figures.values()))
            meaning = f"{verdict}: {share * 100:.0f} % of each step {doing}"
            fix = bound_fix(part, self.axolotl_version)
        else:
            meaning, fix = ADVICE[signature]
        if signature == "reward_hacking" and step is not None:
            meaning = meaning.replace("reward hacking suspected:", f"reward hacking suspected at step {step}:", 1)
        shown = ", ".join(f"{k} {_fmt(v)}" for k, v in figures.items() if v is not None)
        span = "this logging step" if needed == 1 else f"{needed} logging steps in a row"
        return f"run doctor [{signature}]: {meaning} ({shown}; {span}). Fix: {fix}."


def stats_mean(values: list[float]) -> float:
    return sum(values) / len(values)


def _fmt(value: float) -> str:
    return f"{value:.3g}"


def resolve(raw: Any) -> DoctorSettings | None:
    """`grpo_plugin.doctor` (True, False, None, a mapping or the model) -> settings, None when off."""
    return switched(raw, DoctorSettings)


def make_callback(config: DoctorSettings, writer: Any = None,
                  report: Callable[[str], None] | None = None):
    """A TrainerCallback running a `Doctor` on every `on_log`; each finding is logged on rank 0,
    written to the rollout log through `writer`, and stops the run when `stop` is set."""
    from transformers import TrainerCallback

    class DoctorCallback(TrainerCallback):
        """Diagnoses known GRPO failure signatures from the logged metrics; optionally stops."""

        def __init__(self):
            self.doctor = Doctor(config)

        def on_log(self, args, state, control, logs=None, **kwargs):
            try:
                findings = self.doctor.observe(logs or {}, getattr(state, "global_step", None))
            except Exception as exc:  # the doctor must never stop a healthy run
                LOG.warning("axolotl_grpo_plugin: the run doctor failed (%s: %s); it is off for "
                            "the rest of the run.", type(exc).__name__, exc)
                self.doctor.observe = lambda *a, **k: []
                return control
            for finding in findings:
                if config.stop and finding.signature not in ADVISORY:
                    finding.message += (" Stopping the run (`grpo_plugin.doctor.stop: true`); "
                                        "the trainer saves a checkpoint first.")
                    control.should_training_stop = True
                    control.should_save = True
                if getattr(state, "is_world_process_zero", True):
                    (report or LOG.warning)(finding.message)
                    if writer is not None:
                        writer.write_step([finding.record()])
            return control

    return DoctorCallback()


def attach(run: Run, trainer: Any, writer: Any = None, report: Callable[[str], None] | None = None):
    """Add the doctor to the trainer (every rank: the logged metrics are gathered, so all ranks
    take the same stop decision). `writer`: the rollout log's writer (rank 0), or None."""
    config = resolve(run.plugin.doctor)
    if config is None:
        return None
    callback = make_callback(config, writer, report)
    trainer.add_callback(callback)
    return callback
