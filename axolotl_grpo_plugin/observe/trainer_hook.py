"""Hooks the GRPO trainer to feed the rollout log and the learning metrics.

Axolotl's `on_rollouts_scored` hook fires only on the async GRPO path and carries
no token lengths or gold answers, so we wrap the trainer instance's scoring instead:
`_generate_and_score_completions` on the stock (sync) trainer, and on Axolotl's
async trainer (`trl.async_prefetch`) also `_compute_deferred_scores`, where the main
thread scores what the background thread generated. After either has scored a
generation batch, the trainer's `_logs` deques hold exactly that batch:
prompt and completion texts (gathered from every process with `gather_object`),
each reward (gathered) and the advantages (gathered); their maxlen is the
generation batch size. Only the token lengths and the gold answers are local to
each process, so they are gathered here with one `gather_object` that every
process reaches, whatever happened before it.

Metrics are appended to `trainer._metrics[mode]` like TRL's own, so the trainer
averages them over the logging period and sends them to every configured logger.
Nothing here may stop training: each failure is reported once and skipped.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable
from typing import Any

from ..config.run import Run
from ..rollouts.log import SUPERSEDED_NAME, RolloutLogWriter, reward_weights, supersede_after, weighted_reward
from ..rollouts.metrics import ReflectionMatcher, correct_verdicts, step_metrics
from ..training import release_memory
from ..training.trainer_kind import is_async_grpo
from . import cpu_memory, gpu_memory, step_time, tool_turns


LOG = logging.getLogger("axolotl_grpo_plugin")

_TRAINER_INTERNALS = ("_generate_and_score_completions", "_logs", "_metrics", "reward_func_names", "state")
# Axolotl's async trainer scores a background batch here (its rollout dict carries the rows under
# this key, popped by the call); eval and the sync data producer still use the stock method.
_ASYNC_SCORING, _ASYNC_ROWS = "_compute_deferred_scores", "_deferred_inputs"


def attach(run: Run, trainer: Any, marks: Callable[[], list[dict] | None] | None = None) -> RolloutObserver | None:
    """Install the observer on a GRPO trainer per the `grpo_plugin:` keys, the step-time
    breakdown (step_time.py) and the memory (gpu_memory.py with CUDA, else cpu_memory.py), on any GRPO trainer;
    None when the observer is off or unsupported. `marks`: per group of the batch just scored,
    the fields dynamic sampling adds to its records (training/dynamic_sampling.py)."""
    try:
        observer = _attach(run, trainer, marks)
    except Exception as exc:  # observing must never stop a run from starting
        LOG.warning("axolotl_grpo_plugin: rollout log and learning metrics are off for this run "
                    "(%s: %s)", type(exc).__name__, exc)
        observer = None
    try:
        clock = step_time.attach(run, trainer, getattr(observer, "writer", None))
        if clock is not None and observer is not None:  # writing the rollout log is bookkeeping
            observer.after_scoring = clock.timed("other", observer.after_scoring)
    except Exception as exc:
        LOG.warning("axolotl_grpo_plugin: the step-time breakdown is off for this run (%s: %s)",
                    type(exc).__name__, exc)
    try:
        if not gpu_memory.attach(trainer):
            release = release_memory.Policy(run.plugin.cpu_release_memory)
            cpu_memory.attach(trainer, on_headroom=release.on_headroom)
            release.start()
    except Exception as exc:
        LOG.warning("axolotl_grpo_plugin: the trainer's memory is not logged in this run (%s: %s)",
                    type(exc).__name__, exc)
    return observer


def _attach(run: Run, trainer: Any, marks=None) -> RolloutObserver | None:
    settings = run.plugin
    if not (settings.rollout_log or settings.learning_metrics):
        return None
    wanted = _TRAINER_INTERNALS + ((_ASYNC_SCORING,) if is_async_grpo(trainer) else ())
    missing = [name for name in wanted if not hasattr(trainer, name)]
    if missing or _streams_scores(trainer):
        LOG.warning(
            "axolotl_grpo_plugin: rollout log and learning metrics support TRL's GRPOTrainer and "
            "Axolotl's async trainer; %s %s. Training continues without them.", type(trainer).__name__,
            f"lacks {', '.join(missing)}" if missing else "scores in streaming chunks (`trl.streaming_partial_batch`)",
        )
        return None
    observer = RolloutObserver(trainer, settings)
    observer.marks = marks
    if not is_async_grpo(trainer):  # the async trainer generates in a thread: no batch to pair with
        observer.tool_turns = tool_turns.capture(trainer)
    original = trainer._generate_and_score_completions

    @functools.wraps(original)
    def generate_score_and_observe(inputs, *args, **kwargs):
        output = original(inputs, *args, **kwargs)
        observer.after_scoring(inputs, output)
        return output

    trainer._generate_and_score_completions = generate_score_and_observe
    if is_async_grpo(trainer):
        deferred = getattr(trainer, _ASYNC_SCORING)

        @functools.wraps(deferred)
        def score_deferred_and_observe(rollout, *args, **kwargs):
            rows = rollout.get(_ASYNC_ROWS) if isinstance(rollout, dict) else None
            output = deferred(rollout, *args, **kwargs)
            observer.after_scoring(list(rows or []), output)
            return output

        setattr(trainer, _ASYNC_SCORING, score_deferred_and_observe)
    if observer.writer is not None and hasattr(trainer, "add_callback"):
        trainer.add_callback(log_lifecycle(observer.writer))
    return observer


def _streams_scores(trainer: Any) -> bool:
    """Axolotl's streaming scorer logs each group as it finishes, not a batch at once."""
    return is_async_grpo(trainer) and getattr(getattr(trainer, "args", None), "streaming_partial_batch", False) is True


def log_lifecycle(writer: RolloutLogWriter):
    """The rollout log's TrainerCallback (transformers is imported here, not with the package).

    At train begin of a resumed run (the state says step N > 0 before the first write), the
    records the crashed run logged after step N are moved aside (`rollout_log.supersede_after`),
    so the log continues with every step exactly once. At train end it says how many records a
    failed write lost, if any, and closes the log."""
    from transformers import TrainerCallback

    class RolloutLogLifecycle(TrainerCallback):
        def __init__(self):
            self.writer = writer

        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step > 0:
                try:
                    moved = supersede_after(writer.dir, state.global_step)
                except Exception as exc:  # observing never stops training
                    LOG.warning("axolotl_grpo_plugin: could not set aside the rollout log's records after "
                                "step %d (%s: %s)", state.global_step, type(exc).__name__, exc)
                    return control
                if moved:
                    LOG.warning("axolotl_grpo_plugin: resumed at step %d: moved %d rollout-log records of "
                                "later steps to %s", state.global_step, moved, SUPERSEDED_NAME)
            return control

        def on_train_end(self, args, state, control, **kwargs):
            writer.flush()  # the last step's deferred records (step_time.py)
            line = writer.summary()
            if line:
                LOG.warning(line)
            writer.close()

    return RolloutLogLifecycle()


class RolloutObserver:
    """Turns one scored generation batch into rollout-log lines and `observe/*` metrics."""

    def __init__(self, trainer: Any, settings: Any):
        self.trainer = trainer
        self.matcher = ReflectionMatcher(settings.reflection_phrases)
        self.metrics_on = settings.learning_metrics
        # the judge an evaluation section names (`correct_reward`) judges observe/accuracy too
        named = [s.correct_reward for s in (settings.eval_every, settings.eval_at_end)
                 if getattr(s, "correct_reward", None)]
        self.correct_reward = named[0] if named else None
        self.writer = None
        self.tool_turns = None  # tool_turns.ToolTurns on a run with tools
        self.marks = None  # dynamic sampling's fields per group of the batch (its round, its fate)
        if settings.rollout_log and trainer.accelerator.is_main_process:
            self.writer = RolloutLogWriter(trainer.args.output_dir, settings.rollout_log_max_mb)
        self._reported: set[str] = set()

    def _report_once(self, what: str, exc: BaseException) -> None:
        if what not in self._reported:
            self._reported.add(what)
            LOG.warning("axolotl_grpo_plugin: %s failed (%s: %s); training continues, "
                        "this is reported once.", what, type(exc).__name__, exc)

    def after_scoring(self, inputs: list[dict], output: dict) -> None:
        local = self._local_columns(inputs, output)
        gathered = self._gather(local)
        try:
            self._observe(gathered)
        except Exception as exc:
            self._report_once("observing the scored rollouts", exc)

    def _local_columns(self, inputs: list[dict], output: dict) -> list[tuple]:
        """(token length, gold answer, tool turns) per local completion; placeholders on failure."""
        try:
            lengths = output["completion_mask"].sum(dim=1).tolist()
            answers = [row.get("answer") for row in inputs] if inputs else [None] * len(lengths)
            ids = output["completion_ids"].tolist() if self.tool_turns else []
            turns = (self.tool_turns.take([row[:n] for row, n in zip(ids, lengths, strict=True)])
                     if self.tool_turns else [None] * len(lengths))
            return [(int(n), a if isinstance(a, (str, int, float)) else None, t)
                    for n, a, t in zip(lengths, answers, turns, strict=True)]
        except Exception as exc:
            self._report_once("reading completion lengths", exc)
            return [(None, None, None)] * len(inputs)

    def _gather(self, local: list[tuple]) -> list[tuple]:
        """Every process calls this exactly once per batch, so the collective always matches."""
        if self.trainer.accelerator.num_processes == 1:
            return local
        from accelerate.utils import gather_object

        return gather_object(local)

    def _observe(self, gathered: list[tuple]) -> None:
        trainer = self.trainer
        logs = trainer._logs
        n = len(gathered)
        completions = list(logs["completion"])[-n:]
        prompts = list(logs["prompt"])[-n:]
        advantages = list(logs["advantages"])[-n:]
        names = list(trainer.reward_func_names)
        rewards = {name: list(logs["rewards"][name])[-n:] for name in names}
        # per-sample call records of remote rewards (remote/reward.py logs one per batch via log_extra)
        remote = {col: list(v)[-n:] for col, v in (logs.get("extra") or {}).items() if col.startswith("remote/")}
        if any(len(c) != n for c in (completions, prompts, advantages, *rewards.values())):
            raise RuntimeError(f"TRL's completion log does not hold this batch of {n} rollouts")
        lengths = [length for length, _, _ in gathered]
        answers = [answer for _, answer, _ in gathered]
        turns = [t for _, _, t in gathered]
        # a tool rollout's format is its final answer's, as the rewards read it
        finals = [t["final"] if t else c for t, c in zip(turns, completions, strict=True)]
        mode = "train" if trainer.model.training else "eval"

        if self.metrics_on:
            correct = correct_verdicts(rewards, self.correct_reward)
            metrics = step_metrics(finals, lengths, correct, self.matcher)
            metrics[DEGENERATE_REINFORCED] = _degenerate_share(trainer, completions, prompts, lengths, advantages)
            for key, value in metrics.items():
                trainer._metrics[mode][key].append(value)

        if self.writer is not None:
            step = trainer.state.global_step + (1 if mode == "train" else 0)
            weights = reward_weights(trainer, len(names))
            generations = "num_generations" if mode == "train" else "num_generations_eval"
            group_size = max(1, int(getattr(trainer, generations, None) or 1))
            marks = self.marks() if self.marks is not None and mode == "train" else None
            if marks is not None and len(marks) * group_size != n:
                raise RuntimeError(f"dynamic sampling marked {len(marks)} groups of a batch of {n} rollouts")
            records = []
            for i in range(n):
                per_func = {name: rewards[name][i] for name in names}
                record = {
                    "step": step,
                    "mode": mode,
                    "group": i // group_size,
                    "prompt": prompts[i],
                    "completion": completions[i],
                    "rewards": per_func,
                    "reward": weighted_reward(per_func.values(), weights),
                    "advantage": advantages[i],
                    "length": lengths[i],
                    "reflection": self.matcher.first(completions[i]),
                }
                if answers[i] is not None:
                    record["answer"] = answers[i]
                if turns[i]:
                    record["tool_calls"] = turns[i]["tool_calls"]
                record.update({col: v[i] for col, v in remote.items() if len(v) == n})
                if marks is not None:
                    record.update(marks[i // group_size])
                records.append(record)
            self.writer.write_step(records)


DEGENERATE_REINFORCED = "observe/degenerate_reinforced"


def _degenerate_share(trainer: Any, completions, prompts, lengths, advantages) -> float:
    """Share of the batch's positive-advantage completions that look degenerate (the reward audit's
    families, rollouts/scan.py): what the run doctor's `reward_hacking` reads. 0.0 when none."""
    from ..rollouts.scan import step_share

    cap = getattr(trainer.args, "max_completion_length", None)
    share = step_share(completions, prompts, lengths, advantages, cap if isinstance(cap, int) else None)
    return 0.0 if math.isnan(share) else share
