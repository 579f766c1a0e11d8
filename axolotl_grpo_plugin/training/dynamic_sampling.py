"""Dynamic sampling with a fixed batch (`grpo_plugin.dynamic_sampling`, DAPO; docs/dynamic-sampling.md).

Why: a group whose completions all score the same has advantage 0: its generation is paid for and
it teaches nothing (65-83 % of SmolLM2's groups of 4, docs/benchmarks.md). TRL 1.9-1.16 has no
dynamic sampling, so the plugin wraps the trainer's `_generate_and_score_completions`, the call
that turns a generation batch of prompts into a scored, trainable batch:

    round 1   the dataloader's prompts, generated and scored by TRL as usual
    judge     each group's reward std (the rewards TRL gathered, `rollouts/spread.py`): above
              `min_std` it has spread; every group's fate is decided at once (`plan_round`)
    fill      groups with spread fill the batch; without spread they are set aside; spread groups
              beyond the batch are carried into the next step's batch (not thrown away: verl #2285)
    round 2+  new prompts, drawn from the training set, for the places left, up to `max_rounds`
    cap       at `max_rounds` the places left take this round's groups without spread: the step
              trains on what it has, says so in one line, and the run goes on (verl #953)

Each process fills its own share of the batch from its own groups (a group never straddles two
processes: `check` asks for whole groups per process), and every process takes the same number of
rounds, because each round's generation and scoring are collectives; the fates are computed from
the gathered rewards, so every process knows every other's. The batch handed back is TRL's own
output dict, its rows picked from the rounds and re-padded (prompts left, completions right), with
`num_items_in_batch` recounted. Carried groups were generated one optimizer step earlier; they
keep the old-policy log-probs TRL computed then (always with vLLM's importance sampling), else they
train as on-policy, one step stale. Each checkpoint keeps every process's carried groups
(`CARRY_FILE`), and a run resumed from it trains them first, as the run before would have.

The judge wraps TRL's method beneath the rollout log (observe/trainer_hook.py), which reads each
round's fates through `marks`; the rounds wrap above it, so the log holds every round's rollouts.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.run import Run
from ..errors import PluginError
from ..rollouts.log import KIND_FIELD, SAMPLING, reward_weights, weighted_reward
from ..rollouts.spread import group_stds, has_spread
from .batch_keys import LEFT_PADDED, PAD_ONES, PER_ROW, RECOUNTED, TOKEN_IDS, unknown_keys
from .checkpoints import resume_target
from .trainer_kind import is_async_grpo


LOG = logging.getLogger("axolotl_grpo_plugin")

KEY = "grpo_plugin.dynamic_sampling"
# a group's fate in one round (the rollout log's `sampling` field; a kept group has none)
KEPT, CAP_FILL, CARRIED, DROPPED, SET_ASIDE = "kept", "cap_fill", "carried", "dropped", "set_aside"
TRAINED_NOW = (KEPT, CAP_FILL)
METRICS = {
    "rounds": "sampling/rounds",
    "kept": "sampling/groups_kept",
    "discarded": "sampling/groups_discarded",
    "zero_std_trained": "sampling/zero_std_trained",
    "cap_hit": "sampling/cap_hit",
    "carried": "sampling/groups_carried",
}
CARRY_FILE = "dynamic_sampling_carry.rank{rank}.pt"  # in each checkpoint: one process's carried groups


def plan_round(spread: list[bool], need: list[int], room: list[int], per_process: int, last: bool) -> list[str]:
    """Every group's fate in one round, in the gathered (process-major) order: per process, spread
    groups fill its `need` places (KEPT), then its carry `room` (CARRIED), then DROPPED; groups
    without spread are SET_ASIDE, except in the `last` round, where the places spread did not fill
    take them (CAP_FILL)."""
    fates = []
    for p, (places, free) in enumerate(zip(need, room, strict=True)):
        mine = spread[p * per_process:(p + 1) * per_process]
        fill = max(0, places - sum(mine)) if last else 0
        for has in mine:
            if has and places:
                fates.append(KEPT)
                places -= 1
            elif has and free:
                fates.append(CARRIED)
                free -= 1
            elif has:
                fates.append(DROPPED)
            elif fill:
                fates.append(CAP_FILL)
                fill -= 1
            else:
                fates.append(SET_ASIDE)
    return fates


@dataclass
class Round:
    """What the judge needs to decide a round's fates, and what it decided."""

    number: int
    need: list[int]  # per process: places of the batch still empty
    room: list[int]  # per process: groups its carry can still take
    last: bool
    fates: list[str] | None = None  # per gathered group, once judged


@dataclass
class DynamicSampler:
    """One trainer's dynamic sampling: the judge (`judge`), the rounds (`fill`) and the carry."""

    trainer: Any
    max_rounds: int
    min_std: float
    writer: Any = None  # the rollout log's writer (main process), for the step's `sampling` record
    carry: list[tuple[dict, int]] = field(default_factory=list)  # (a round's output, a group's first row)
    round: Round | None = None
    dropped_told: bool = False

    # --- the judge: beneath the rollout log ------------------------------------------------
    def judge(self, method):
        """Wrap TRL's method: after each training round, decide every group's fate."""

        @functools.wraps(method)
        def judged(inputs, *args, **kwargs):
            output = method(inputs, *args, **kwargs)
            if self.round is not None:
                stds = group_stds(self._round_rewards(len(inputs)), self._groups_of())
                spread = [has_spread(s, self.min_std) for s in stds]
                self.round.fates = plan_round(spread, self.round.need, self.round.room,
                                              len(inputs) // self._groups_of(), self.round.last)
            return output

        return judged

    def marks(self) -> list[dict] | None:
        """Per gathered group of the round just scored, what the rollout log adds to its records
        (`round`, and `sampling` unless it trains in this step's batch); None outside a round."""
        if self.round is None or self.round.fates is None:
            return None
        return [{"round": self.round.number, **({} if fate == KEPT else {"sampling": fate})}
                for fate in self.round.fates]

    def _groups_of(self) -> int:
        return int(self.trainer.num_generations)

    def _round_rewards(self, local_rows: int) -> list[float | None]:
        """The round's weighted rewards, every process's (TRL gathered them into `_logs`)."""
        logs, names = self.trainer._logs, list(self.trainer.reward_func_names)
        n = local_rows * self.trainer.accelerator.num_processes
        columns = [list(logs["rewards"][name])[-n:] for name in names]
        if any(len(c) != n for c in columns):
            raise RuntimeError(f"TRL's reward log does not hold this round's {n} rewards")
        weights = reward_weights(self.trainer, len(names))
        return [weighted_reward(row, weights) for row in zip(*columns, strict=True)]

    # --- the rounds: above the rollout log ----------------------------------------------
    def fill(self, method):
        """Wrap the (observed) method: a training call fills its batch in rounds."""

        @functools.wraps(method)
        def filled(inputs, *args, **kwargs):
            if not self.trainer.model.training:
                return method(inputs, *args, **kwargs)
            return self._step(method, inputs, args, kwargs)

        return filled

    def _step(self, method, inputs, args, kwargs) -> dict:
        trainer, groups = self.trainer, self._groups_of()
        per_process = len(inputs) // groups
        processes, me = trainer.accelerator.num_processes, trainer.accelerator.process_index
        batch, self.carry = self.carry[:per_process], self.carry[per_process:]
        need, room = self._gather_places(per_process - len(batch), per_process - len(self.carry))
        counts = dict.fromkeys((KEPT, CAP_FILL, CARRIED, DROPPED, SET_ASIDE), 0)
        step = trainer.state.global_step + 1
        number = 0
        while True:
            number += 1
            self.round = Round(number, need, room, last=number >= self.max_rounds)
            try:
                output = method(inputs, *args, **kwargs)
                fates = self.round.fates
            finally:
                self.round = None
            if fates is None or len(fates) != per_process * processes:
                raise RuntimeError("dynamic sampling: the round was not judged (the trainer's scoring was replaced "
                                   "after the plugin attached)")
            for fate in fates:
                counts[fate] += 1
            for g, fate in enumerate(fates[me * per_process:(me + 1) * per_process]):
                if fate in TRAINED_NOW:
                    batch.append((output, g * groups))
                elif fate == CARRIED:
                    self.carry.append((output, g * groups))
            need, room = _after(fates, need, room, per_process)
            if not any(need):
                break
            # said each round, so the extra rounds do not look like a hang (verl #3413)
            _tell_main(trainer, logging.INFO, f"dynamic_sampling: step {step}, round {number} of "
                       f"{self.max_rounds}: {per_process * processes - sum(need)} of "
                       f"{per_process * processes} places hold groups with spread; generating more")
            inputs = self._draw(step, number, per_process, groups)
        cap_hit = counts[CAP_FILL] > 0
        if cap_hit:
            _tell_main(trainer, logging.WARNING, f"dynamic_sampling: step {step} reached max_rounds="
                       f"{self.max_rounds} with {counts[CAP_FILL]} of {per_process * processes} places "
                       "left: it trains on groups without spread there and goes on (raise "
                       f"{KEY}.max_rounds, use easier prompts, or more trl.num_generations)")
        if counts[DROPPED] and not self.dropped_told:
            self.dropped_told = True
            _tell_main(trainer, logging.WARNING, f"dynamic_sampling: {counts[DROPPED]} groups with spread found no "
                       "room in a carry of one batch (a process filled its share long before another); they "
                       "are marked `dropped` in the rollout log. Said once.")
        self._log(step, number, counts, per_process * processes, cap_hit)
        return assemble(batch, groups, _pad_id(trainer), trainer.accelerator)

    def _gather_places(self, need: int, room: int) -> tuple[list[int], list[int]]:
        """Every process's empty places and carry room (one collective per step)."""
        import torch

        accelerator = self.trainer.accelerator
        if accelerator.num_processes == 1:
            return [need], [room]
        both = accelerator.gather(torch.tensor([need, room], device=accelerator.device)).view(-1, 2).tolist()
        return [n for n, _ in both], [r for _, r in both]

    def _draw(self, step: int, number: int, per_process: int, groups: int) -> list[dict]:
        """This process's rows for the next round: `per_process` training prompts, each
        `groups` times (as TRL's sampler repeats them). Every process draws the same seeded
        indices and takes its own slice; seeded by the run's seed, the step and the round, so a
        resumed run draws as the first run did."""
        import torch

        dataset = self.trainer.train_dataset
        accelerator = self.trainer.accelerator
        total = per_process * accelerator.num_processes
        seed = int(getattr(self.trainer.args, "seed", 0) or 0)
        generator = torch.Generator().manual_seed((seed * 1_000_003 + step * 1009 + number) % (2**63))
        size = len(dataset)
        picks = (torch.randperm(size, generator=generator)[:total] if size >= total
                 else torch.randint(size, (total,), generator=generator))
        mine = picks[accelerator.process_index * per_process:(accelerator.process_index + 1) * per_process]
        return [dataset[int(i)] for i in mine.tolist() for _ in range(groups)]

    # --- the carry across a resume -------------------------------------------------------
    def _carry_path(self, checkpoint: Path) -> Path:
        return Path(checkpoint) / CARRY_FILE.format(rank=self.trainer.accelerator.process_index)

    def save_carry(self, checkpoint: Path) -> bool:
        """This process's carried groups into `checkpoint` (its rows only, on the CPU), written
        whole; False when the folder is not there (this process saw no checkpoint)."""
        import torch

        if not Path(checkpoint).is_dir():
            return False
        size = self._groups_of()
        groups = [{key: value[start:start + size].detach().cpu() for key, value in output.items() if key != RECOUNTED}
                  for output, start in self.carry]
        path = self._carry_path(checkpoint)
        part = path.with_name(path.name + ".part")
        torch.save(groups, part)
        os.replace(part, path)
        return True

    def load_carry(self, checkpoint: Path) -> int | None:
        """The carried groups `save_carry` wrote into `checkpoint`, to train first; None when it
        holds none (a checkpoint of a run without dynamic sampling, or of an older plugin)."""
        import torch

        path = self._carry_path(checkpoint)
        if not path.is_file():
            return None
        groups = torch.load(path, map_location=self.trainer.accelerator.device, weights_only=True)
        self.carry = [(group, 0) for group in groups]
        return len(groups)

    def _log(self, step: int, rounds: int, counts: dict[str, int], places: int, cap_hit: bool) -> None:
        values = {
            "rounds": rounds,
            "kept": counts[KEPT] + counts[CARRIED] + counts[DROPPED],
            "discarded": counts[SET_ASIDE],
            "zero_std_trained": counts[CAP_FILL] / places,
            "cap_hit": int(cap_hit),
            "carried": counts[CARRIED],
        }
        metrics = self.trainer._metrics["train"]
        for name, value in values.items():
            metrics[METRICS[name]].append(float(value))
        if self.writer is not None:
            self.writer.defer({KIND_FIELD: SAMPLING, "step": step, **values, "dropped": counts[DROPPED],
                               "places": places})


def _after(fates: list[str], need: list[int], room: list[int], per_process: int) -> tuple[list[int], list[int]]:
    """Each process's empty places and carry room after a round's fates."""
    mine = [fates[p * per_process:(p + 1) * per_process] for p in range(len(need))]
    return ([n - sum(f in TRAINED_NOW for f in m) for n, m in zip(need, mine, strict=True)],
            [r - m.count(CARRIED) for r, m in zip(room, mine, strict=True)])


def _tell_main(trainer: Any, level: int, line: str) -> None:
    if trainer.accelerator.is_main_process:
        LOG.log(level, "axolotl_grpo_plugin: %s", line)


def _pad_id(trainer: Any) -> int:
    tokenizer = getattr(trainer, "_tokenizer", None) or getattr(trainer, "processing_class", None)
    tokenizer = getattr(tokenizer, "tokenizer", tokenizer)
    pad = getattr(tokenizer, "pad_token_id", None)
    return pad if isinstance(pad, int) else 0


def assemble(groups: list[tuple[dict, int]], size: int, pad_id: int, accelerator: Any) -> dict:
    """One trainable batch from groups of several rounds' outputs (`size` rows each, from row
    `start`): TRL's keys, rows stacked, left- or right-padded to the widest, `num_items_in_batch`
    recounted over every process's batch (a collective)."""
    import torch

    first = groups[0][0]
    unknown = unknown_keys(first)
    if unknown:
        raise PluginError(f"{KEY}: the trainer's batch carries {', '.join(unknown)}, which dynamic "
                          "sampling cannot restack (it handles text batches: prompt and completion tokens, "
                          f"masks, log-probs). Fix: remove `{KEY}` for this model.")
    out: dict[str, Any] = {}
    for key, value in first.items():
        if key == RECOUNTED:
            continue
        pieces = [part[key][start:start + size] for part, start in groups]
        if key in PER_ROW or value.dim() == 1:
            out[key] = torch.cat(pieces)
            continue
        width = max(p.size(1) for p in pieces)
        fill = pad_id if key in TOKEN_IDS else 1 if key in PAD_ONES else 0
        padded = []
        for piece in pieces:
            gap = width - piece.size(1)
            if gap:
                pad = piece.new_full((piece.size(0), gap, *piece.shape[2:]), fill)
                piece = torch.cat([pad, piece] if key in LEFT_PADDED else [piece, pad], dim=1)
            padded.append(piece)
        out[key] = torch.cat(padded)
    mask = out["completion_mask"] * out["tool_mask"] if "tool_mask" in out else out["completion_mask"]
    out[RECOUNTED] = accelerator.gather(mask.sum()).sum()
    return out


def attach(run: Run, trainer: Any) -> DynamicSampler | None:
    """The judge beneath whatever wraps the trainer's scoring next (the rollout log); None when
    `grpo_plugin.dynamic_sampling` is not set. `fill` then puts the rounds above it."""
    settings = run.plugin.dynamic_sampling
    if settings is None:
        return None
    if is_async_grpo(trainer):  # `check` refuses the pair; a trainer built another way is refused here
        raise PluginError(f"{KEY}: {type(trainer).__name__} generates in a background thread, which dynamic "
                          "sampling cannot drive. Fix: remove `trl.async_prefetch` / `trl.use_data_producer`, "
                          f"or `{KEY}`.")
    replaced = _scoring_replaced_by(trainer)
    if replaced is not None:
        raise PluginError(f"{KEY}: {replaced} scores its batches its own way (Axolotl's context-parallel trainer "
                          "shares prompts between processes), which dynamic sampling cannot fill. Fix: remove "
                          f"`context_parallel_size`, or `{KEY}`.")
    sampler = DynamicSampler(trainer, settings.max_rounds, settings.min_std)
    trainer._generate_and_score_completions = sampler.judge(trainer._generate_and_score_completions)
    trainer.add_callback(carry_callback(sampler, resume_target(run)))
    return sampler


def carry_callback(sampler: DynamicSampler, resumed_from: Path | None):
    """The TrainerCallback that saves the carry with each checkpoint and, on a resumed run, loads
    it at train begin (the trainer's state is loaded by then: its step names the checkpoint)."""
    from transformers import TrainerCallback

    class KeepTheCarry(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            checkpoint = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if not sampler.save_carry(checkpoint) and sampler.carry:
                LOG.warning("axolotl_grpo_plugin: %s: %d carried groups not saved: %s is not on this process's "
                            "disk; a run resumed from it starts without them", KEY, len(sampler.carry), checkpoint)
            return control

        def on_train_begin(self, args, state, control, **kwargs):
            if state.global_step <= 0:
                return control
            named = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            candidates = [c for c in (resumed_from, named) if c is not None]
            found = next(((c, n) for c in candidates if (n := sampler.load_carry(c)) is not None), None)
            if found is None:
                _tell_main(sampler.trainer, logging.INFO, f"dynamic_sampling: resumed at step {state.global_step} "
                           f"without carried groups ({candidates[0]} holds none: saved without dynamic sampling, "
                           "or by an older plugin)")
            else:
                _tell_main(sampler.trainer, logging.INFO, f"dynamic_sampling: resumed at step {state.global_step} "
                           f"with {found[1]} carried groups from {found[0]}, trained first")
            return control

    return KeepTheCarry()


def _scoring_replaced_by(trainer: Any) -> str | None:
    """The class that replaced TRL's `_generate_and_score_completions` (Axolotl's context-parallel
    GRPO trainer), or None: TRL's own, or not a TRL trainer at all."""
    from trl import GRPOTrainer

    if not isinstance(trainer, GRPOTrainer):
        return None
    owner = next(cls for cls in type(trainer).__mro__ if "_generate_and_score_completions" in vars(cls))
    return None if owner is GRPOTrainer else owner.__name__


def fill(sampler: DynamicSampler | None, trainer: Any, writer: Any = None) -> None:
    """Put the rounds above the trainer's (observed) scoring; `writer`: the rollout log's."""
    if sampler is None:
        return
    sampler.writer = writer
    trainer._generate_and_score_completions = sampler.fill(trainer._generate_and_score_completions)
