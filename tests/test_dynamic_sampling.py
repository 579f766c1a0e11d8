"""Dynamic sampling (`grpo_plugin.dynamic_sampling`, issue 66) on a stand-in trainer that scores the
way TRL's GRPOTrainer does: the fates of groups, the rounds, the carry, the cap, the restacked batch,
the rollout log's marks and the metrics. The real `axolotl train` runs are in
tests/test_dynamic_sampling_train.py."""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.observe import attach as observe
from axolotl_grpo_plugin.observe import read_rollouts
from axolotl_grpo_plugin.rollouts.log import read_rollouts as read_everything
from axolotl_grpo_plugin.rollouts.spread import group_std, group_stds, has_spread
from axolotl_grpo_plugin.training import dynamic_sampling
from axolotl_grpo_plugin.training.dynamic_sampling import (
    CAP_FILL,
    CARRIED,
    DROPPED,
    KEPT,
    SET_ASIDE,
    assemble,
    plan_round,
)


PAD = 99
G = 2  # completions per prompt


# --- the rule and the fates ----------------------------------------------------------------

def test_dynamic_sampling_spread_is_a_std_strictly_above_min_std():
    assert group_std([1.0, 1.0, 1.0]) == 0.0
    assert group_std([0.0, 1.0]) == pytest.approx(2 ** -0.5)  # unbiased, as TRL's nanstd
    assert group_std([1.0, None, float("nan")]) == 0.0  # one scored value: no spread
    noise = group_std([0.1 + 0.2, 0.3, 0.3])  # 5e-17: float noise
    assert noise > 0 and not has_spread(noise, 1e-6) and has_spread(noise, 0.0)
    assert group_stds([0, 0, 0, 1], 2) == [0.0, pytest.approx(2 ** -0.5)]


def test_dynamic_sampling_fates_fill_then_carry_then_drop_and_the_cap_fills_with_no_spread():
    # one process, 4 places: spread groups fill, the rest of the spread is carried
    assert plan_round([True, False, True, True], [2], [4], 4, last=False) == [KEPT, SET_ASIDE, KEPT, CARRIED]
    # the carry is full: spread beyond it is dropped
    assert plan_round([True, True, True, False], [1], [1], 4, last=False) == [KEPT, CARRIED, DROPPED, SET_ASIDE]
    # the last round: places spread left empty take groups without spread, in order
    assert plan_round([False, True, False, False], [3], [4], 4, last=True) == [CAP_FILL, KEPT, CAP_FILL, SET_ASIDE]
    # two processes, two groups each: each fills its own places
    assert plan_round([True, True, False, True], [1, 2], [2, 2], 2, last=False) == [KEPT, CARRIED, SET_ASIDE, KEPT]


# --- a stand-in for TRL's trainer ----------------------------------------------------------

class World:
    """The processes of a fake launch: `gather` is a collective over threads."""

    def __init__(self, size: int):
        self.size = size
        self.barrier = threading.Barrier(size)
        self.slots: list = [None] * size

    def gather(self, rank: int, values: list) -> list:
        self.slots[rank] = list(values)
        self.barrier.wait()
        out = [v for slot in self.slots for v in slot]
        self.barrier.wait()
        return out


class Accelerator:
    def __init__(self, world: World | None = None, rank: int = 0):
        self.world, self.process_index = world, rank
        self.num_processes = world.size if world else 1
        self.is_main_process = rank == 0
        self.device = torch.device("cpu")

    def gather(self, tensor):
        flat = tensor.reshape(-1).tolist()
        if self.world is None:
            return tensor.reshape(-1) if tensor.dim() else tensor
        return torch.tensor(self.world.gather(self.process_index, flat), dtype=tensor.dtype)


class FakeTrainer:
    """What dynamic sampling and the rollout log read of TRL's GRPOTrainer, filled as TRL fills it.

    A prompt's row says whether its group has spread (`spread`: rewards 0, 1, 0, 1, ...) or not
    (the same reward); each call's token widths differ (2 + call prompt tokens, 3 + call completion
    tokens), so the restacked batch must re-pad, and every token id is `1000 * call + row`, so a test
    can tell which round and row each trained row came from."""

    def __init__(self, output_dir, rows, world: World | None = None, rank: int = 0, seed: int = 0):
        self.num_generations = G
        self.reward_func_names = ["correctness_reward_func"]
        self.reward_weights = torch.tensor([1.0])
        self.state = SimpleNamespace(global_step=0)
        self.args = SimpleNamespace(output_dir=str(output_dir), seed=seed)
        self.model = SimpleNamespace(training=True)
        self.accelerator = Accelerator(world, rank)
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._logs = {"prompt": deque(maxlen=64), "completion": deque(maxlen=64), "advantages": deque(maxlen=64),
                      "rewards": defaultdict(lambda: deque(maxlen=64))}
        self._tokenizer = SimpleNamespace(pad_token_id=PAD)
        self.train_dataset = rows
        self.calls = 0
        self.callbacks = []

    def add_callback(self, callback):
        self.callbacks.append(callback)

    def _generate_and_score_completions(self, inputs):
        self.calls += 1
        call, n = self.calls, len(inputs)
        rewards = [float(i % 2) if row["spread"] else 1.0 for i, row in enumerate(inputs)]
        everyone = self.accelerator.gather(torch.tensor(rewards)).tolist()
        for value in everyone:
            self._logs["rewards"]["correctness_reward_func"].append(value)
        prompts = [row["prompt"] for row in inputs]
        completions = [f"{row['prompt']} answer {i}" for i, row in enumerate(inputs)]
        if self.accelerator.world is not None:
            prompts = self.accelerator.world.gather(self.accelerator.process_index, prompts)
            completions = self.accelerator.world.gather(self.accelerator.process_index, completions)
        self._logs["prompt"].extend(prompts)
        self._logs["completion"].extend(completions)
        self._logs["advantages"].extend([0.0] * len(prompts))
        ids = torch.tensor([[1000 * call + i] for i in range(n)])
        width_p, width_c = 2 + call, 3 + call
        completion_mask = torch.ones(n, width_c, dtype=torch.long)
        completion_mask[:, -1] = 0  # TRL's right padding
        return {
            "prompt_ids": ids.repeat(1, width_p), "prompt_mask": torch.ones(n, width_p, dtype=torch.long),
            "completion_ids": ids.repeat(1, width_c), "completion_mask": completion_mask,
            "advantages": torch.tensor([1000.0 * call + i for i in range(n)]),
            "old_per_token_logps": torch.full((n, width_c), -float(call)),
            "num_items_in_batch": torch.tensor(-1),
        }


def rows(spread: list[bool]) -> list[dict]:
    return [{"prompt": f"p{i}", "spread": s, "answer": str(i)} for i, s in enumerate(spread)]


def repeated(dataset: list[dict], indices: list[int]) -> list[dict]:
    """The dataloader's rows: each prompt G times, as TRL's RepeatSampler yields them."""
    return [dataset[i] for i in indices for _ in range(G)]


def wired(trainer, max_rounds: int, min_std: float = 1e-6, **plugin):
    """Wired as the plugin's post_trainer_create wires it: judge, rollout log, rounds."""
    run = read_run({"grpo_plugin": {"dynamic_sampling": {"max_rounds": max_rounds, "min_std": min_std},
                                    "step_time": False, **plugin}})
    sampler = dynamic_sampling.attach(run, trainer)
    observer = observe(run, trainer, marks=sampler.marks)
    dynamic_sampling.fill(sampler, trainer, getattr(observer, "writer", None))
    return sampler


def step(trainer, inputs):
    out = trainer._generate_and_score_completions(inputs)
    trainer.state.global_step += 1
    return out


def trained(out) -> list[tuple[int, int]]:
    """(call, row) of each trained row, from its advantage."""
    return [(int(a) // 1000, int(a) % 1000) for a in out["advantages"].tolist()]


# --- one process ---------------------------------------------------------------------------

def test_dynamic_sampling_fills_the_batch_with_spread_groups_and_carries_the_rest(tmp_path):
    # every even prompt has spread: the dataloader's batch has 1 of 3, new rounds draw more
    dataset = rows([i % 2 == 0 for i in range(40)])
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=8)
    out = step(trainer, repeated(dataset, [1, 2, 3]))
    calls = trainer.calls
    assert calls >= 2
    # 3 places x 2 rows, each from a spread group of some round, whole groups
    picks = trained(out)
    assert len(picks) == 6 and all(row % 2 == 0 for _, row in picks[::2])
    assert all(b == (c, r + 1) for (c, r), b in zip(picks[::2], picks[1::2]))
    assert out["advantages"].shape == (6,) and out["num_items_in_batch"].item() == sum(
        out["completion_mask"].sum(dim=1).tolist())
    metrics = trainer._metrics["train"]
    assert metrics["sampling/rounds"] == [calls]
    assert metrics["sampling/zero_std_trained"] == [0.0] and metrics["sampling/cap_hit"] == [0.0]
    assert metrics["sampling/groups_kept"][0] == 3 + metrics["sampling/groups_carried"][0]
    assert metrics["sampling/groups_discarded"][0] == 3 * calls - metrics["sampling/groups_kept"][0]

    # the rollout log: every round's rollouts, the set-aside and carried groups marked
    records = list(read_rollouts(tmp_path))
    assert len(records) == 6 * calls and {r["round"] for r in records} == set(range(1, calls + 1))
    marked = defaultdict(set)
    for r in records:
        marked[r.get("sampling", KEPT)].add((r["round"], r["group"]))
    assert len(marked[KEPT]) == 3 and len(marked[SET_ASIDE]) == metrics["sampling/groups_discarded"][0]
    assert all(r["prompt"] in {f"p{i}" for i in range(1, 40, 2)} for r in records if r.get("sampling") == SET_ASIDE)
    sampling = [r for r in read_everything(tmp_path, everything=True) if r.get("type") == "sampling"]
    assert sampling == []  # deferred: written with the next step's lines

    step(trainer, repeated(dataset, [5, 7, 9]))
    record = [r for r in read_everything(tmp_path, everything=True) if r.get("type") == "sampling"]
    assert [r["step"] for r in record] == [1]
    assert (record[0]["rounds"], record[0]["kept"], record[0]["discarded"]) == (
        calls, metrics["sampling/groups_kept"][0], metrics["sampling/groups_discarded"][0])


def carried_in(tmp_path, step_number: int, calls_before: int) -> list[tuple[int, int]]:
    """(call, first row) of the groups the log marks carried at a step, in the order generated."""
    return sorted({(calls_before + r["round"], r["group"] * G) for r in read_rollouts(tmp_path)
                   if r["step"] == step_number and r.get("sampling") == CARRIED})


def test_dynamic_sampling_carried_groups_train_first_at_the_next_step(tmp_path):
    # prompts 0 and 1 have no spread, the rest have: round 2 finds more spread than places
    dataset = rows([False, False] + [True] * 98)
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=4)
    step(trainer, repeated(dataset, [0, 1, 2]))
    assert trainer.calls == 2
    carried = carried_in(tmp_path, 1, 0)
    assert len(carried) == 1 and trainer._metrics["train"]["sampling/groups_carried"] == [1.0]
    out = step(trainer, repeated(dataset, [0, 1, 3]))
    picks = trained(out)[::2]
    assert picks[0] == carried[0] and picks[1:] == [(3, 4)] + picks[2:]  # then round 1's spread group
    assert trainer.calls == 4  # one place left after the carry and round 1: a second round


def _carry_callback(trainer):
    (callback,) = [c for c in trainer.callbacks if type(c).__name__ == "KeepTheCarry"]
    return callback


def test_dynamic_sampling_a_checkpoint_keeps_the_carry_and_the_resumed_run_trains_it_first(tmp_path, caplog):
    """The groups carried past a saved step are in the checkpoint; a run resumed from it trains
    them first at the next step, as the run that saved them did (the carry is no longer lost)."""
    dataset = rows([False, False] + [True] * 98)
    first = FakeTrainer(tmp_path / "first", dataset)
    wired(first, max_rounds=4)
    step(first, repeated(dataset, [0, 1, 2]))
    carried = carried_in(tmp_path / "first", 1, 0)
    assert len(carried) == 1
    checkpoint = tmp_path / "first" / "checkpoint-1"
    checkpoint.mkdir()
    _carry_callback(first).on_save(first.args, first.state, None)
    assert sorted(p.name for p in checkpoint.iterdir()) == ["dynamic_sampling_carry.rank0.pt"]  # whole, no .part
    went_on = step(first, repeated(dataset, [0, 1, 3]))

    resumed = FakeTrainer(tmp_path / "resumed", dataset)
    resumed.args.output_dir = str(tmp_path / "first")  # resumed in the same output_dir
    wired(resumed, max_rounds=4)
    resumed.state.global_step = 1  # the state transformers loaded from checkpoint-1
    with caplog.at_level(logging.INFO, logger="axolotl_grpo_plugin"):
        _carry_callback(resumed).on_train_begin(resumed.args, resumed.state, None)
    assert "resumed at step 1 with 1 carried groups" in caplog.text
    again = step(resumed, repeated(dataset, [0, 1, 3]))
    assert trained(again)[:G] == trained(went_on)[:G] == [(carried[0][0], carried[0][1] + i) for i in range(G)]
    width = int(went_on["completion_mask"][0].sum())  # the carried rows, their padding aside
    for key in ("completion_ids", "old_per_token_logps", "advantages"):
        assert torch.equal(again[key][:G, :width] if again[key].dim() > 1 else again[key][:G],
                           went_on[key][:G, :width] if went_on[key].dim() > 1 else went_on[key][:G]), key


def test_dynamic_sampling_resumed_from_a_checkpoint_without_a_carry_says_so(tmp_path, caplog):
    dataset = rows([True] * 20)
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=2)
    (tmp_path / "checkpoint-3").mkdir()
    _carry_callback(trainer).on_train_begin(trainer.args, SimpleNamespace(global_step=0), None)
    assert trainer.callbacks and caplog.text == ""  # a fresh run: nothing to load, nothing said
    trainer.state.global_step = 3
    with caplog.at_level(logging.INFO, logger="axolotl_grpo_plugin"):
        _carry_callback(trainer).on_train_begin(trainer.args, trainer.state, None)
    assert "resumed at step 3 without carried groups" in caplog.text and "checkpoint-3" in caplog.text
    assert step(trainer, repeated(dataset, [0, 1, 2]))["advantages"].shape == (3 * G,)


def test_dynamic_sampling_uses_the_carry_before_new_groups_and_never_loses_one(tmp_path):
    dataset = rows([i % 3 != 0 for i in range(60)])  # 2 of 3 prompts have spread
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=10)
    carried: list[tuple[int, int]] = []
    seen_carry = 0
    for s in range(8):
        calls_before = trainer.calls
        out = step(trainer, repeated(dataset, [3 * s, 3 * s + 1, 3 * s + 2, 3 * s + 3]))
        picks = trained(out)[::2]
        assert picks[:len(carried)] == carried  # the carry first, oldest first
        assert all(c > calls_before for c, _ in picks[len(carried):])  # then this step's rounds
        carried = carried_in(tmp_path, s + 1, calls_before)
        assert len(carried) == trainer._metrics["train"]["sampling/groups_carried"][-1]
        assert len(carried) < 4  # one process never carries a whole batch: nothing dropped
        seen_carry += len(carried)
    assert seen_carry > 0 and not any(r.get("sampling") == DROPPED for r in read_rollouts(tmp_path))


def test_dynamic_sampling_at_the_cap_trains_on_what_it_has_says_so_once_and_goes_on(tmp_path, caplog):
    dataset = rows([False] * 20)  # no prompt ever has spread
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=3)
    with caplog.at_level(logging.INFO, logger="axolotl_grpo_plugin"):
        out = step(trainer, repeated(dataset, [0, 1]))
    assert trainer.calls == 3 and len(trained(out)) == 4
    assert {c for c, _ in trained(out)} == {3}  # the last round's groups fill the places
    metrics = trainer._metrics["train"]
    assert metrics["sampling/cap_hit"] == [1.0] and metrics["sampling/zero_std_trained"] == [1.0]
    assert metrics["sampling/groups_discarded"] == [4.0]  # rounds 1 and 2; round 3's train
    caps = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(caps) == 1 and "dynamic_sampling" in caps[0] and "max_rounds=3" in caps[0]
    assert len([r for r in caplog.records if "round" in r.getMessage() and r.levelno == logging.INFO]) == 2
    records = list(read_rollouts(tmp_path))
    assert {r.get("sampling") for r in records if r["round"] == 3} == {CAP_FILL}
    assert {r.get("sampling") for r in records if r["round"] < 3} == {SET_ASIDE}


def test_dynamic_sampling_one_round_is_plain_grpo_with_metrics(tmp_path):
    dataset = rows([True, False, True, False])
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=1)
    out = step(trainer, repeated(dataset, [0, 1, 2, 3]))
    assert trainer.calls == 1 and trained(out) == [(1, i) for i in range(8)]
    assert trainer._metrics["train"]["sampling/zero_std_trained"] == [0.5]


def test_dynamic_sampling_treats_float_noise_as_no_spread(tmp_path):
    dataset = rows([False] * 4)
    trainer = FakeTrainer(tmp_path, dataset)
    original = trainer._generate_and_score_completions

    def noisy(inputs):
        out = original(inputs)
        logged = trainer._logs["rewards"]["correctness_reward_func"]
        for i in range(len(inputs)):  # 0.1 + 0.2 vs 0.3: std 4e-17
            logged[-len(inputs) + i] = 0.1 + 0.2 if i % 2 else 0.3
        return out

    trainer._generate_and_score_completions = noisy
    wired(trainer, max_rounds=2)
    step(trainer, repeated(dataset, [0, 1]))
    assert trainer.calls == 2 and trainer._metrics["train"]["sampling/cap_hit"] == [1.0]


def test_dynamic_sampling_leaves_evaluation_alone(tmp_path):
    dataset = rows([False] * 4)
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=5)
    trainer.model.training = False
    out = trainer._generate_and_score_completions(repeated(dataset, [0, 1]))
    assert trainer.calls == 1 and out["num_items_in_batch"].item() == -1
    assert "sampling/rounds" not in trainer._metrics["train"]
    assert all("round" not in r for r in read_rollouts(tmp_path))


def test_dynamic_sampling_draws_seeded_prompts_so_a_resumed_run_draws_the_same(tmp_path):
    dataset = rows([False] * 50)
    first, resumed = (dynamic_sampling.DynamicSampler(FakeTrainer(tmp_path, dataset), 3, 1e-6) for _ in range(2))
    drawn = first._draw(8, 2, 4, G)
    assert drawn == resumed._draw(8, 2, 4, G) and drawn != first._draw(8, 3, 4, G)
    prompts = [r["prompt"] for r in drawn]
    assert prompts[::2] == prompts[1::2] and len(set(prompts)) == 4  # 4 prompts, each G times
    other_seed = dynamic_sampling.DynamicSampler(FakeTrainer(tmp_path, dataset, seed=1), 3, 1e-6)
    assert other_seed._draw(8, 2, 4, G) != drawn
    # a training set smaller than a round: drawn with replacement, never an error
    assert len(first._draw(1, 2, 4, G)) == 8 and len(dynamic_sampling.DynamicSampler(
        FakeTrainer(tmp_path, rows([True])), 3, 1e-6)._draw(1, 2, 4, G)) == 8


def test_dynamic_sampling_restacks_rounds_padding_prompts_left_and_completions_right():
    def part(call, width_p, width_c, rows=2):
        return {"prompt_ids": torch.full((rows, width_p), call), "prompt_mask": torch.ones(rows, width_p),
                "completion_ids": torch.full((rows, width_c), call), "completion_mask": torch.ones(rows, width_c),
                "tool_mask": torch.ones(rows, width_c), "importance_sampling_ratio": torch.ones(rows, 1),
                "advantages": torch.tensor([float(call)] * rows), "num_items_in_batch": torch.tensor(0)}

    out = assemble([(part(1, 2, 3), 0), (part(2, 4, 1), 0)], 2, PAD, Accelerator())
    assert out["prompt_ids"].tolist() == [[PAD, PAD, 1, 1]] * 2 + [[2, 2, 2, 2]] * 2
    assert out["prompt_mask"].tolist() == [[0, 0, 1, 1]] * 2 + [[1, 1, 1, 1]] * 2
    assert out["completion_ids"].tolist() == [[1, 1, 1]] * 2 + [[2, PAD, PAD]] * 2
    assert out["completion_mask"].tolist() == [[1, 1, 1]] * 2 + [[1, 0, 0]] * 2
    assert out["tool_mask"][2:].tolist() == [[1, 1, 1]] * 2  # TRL pads it with 1; the completion mask masks it
    assert out["importance_sampling_ratio"].shape == (4, 1)
    assert out["num_items_in_batch"].item() == 2 * 3 + 2 * 1
    with pytest.raises(Exception, match="pixel_values"):
        assemble([({**part(1, 2, 3), "pixel_values": torch.ones(2, 3)}, 0)], 2, PAD, Accelerator())


def test_dynamic_sampling_refuses_the_async_trainer(tmp_path):
    class AsyncGRPOTrainer(FakeTrainer):
        pass

    run = read_run({"grpo_plugin": {"dynamic_sampling": {"max_rounds": 2}}})
    with pytest.raises(Exception, match="background thread"):
        dynamic_sampling.attach(run, AsyncGRPOTrainer(tmp_path, rows([True])))
    assert dynamic_sampling.attach(read_run({}), FakeTrainer(tmp_path, rows([True]))) is None


def test_dynamic_sampling_refuses_a_trainer_that_scores_its_own_way(tmp_path):
    """Axolotl's context-parallel trainer replaces TRL's scoring; the stock trainer is driven."""
    from trl import GRPOTrainer

    class AxolotlGRPOContextParallelTrainer(GRPOTrainer):
        def _generate_and_score_completions(self, inputs):
            raise AssertionError("never called")

    run = read_run({"grpo_plugin": {"dynamic_sampling": {"max_rounds": 2}}})
    with pytest.raises(Exception, match="AxolotlGRPOContextParallelTrainer scores its batches its own way"):
        dynamic_sampling.attach(run, object.__new__(AxolotlGRPOContextParallelTrainer))
    assert dynamic_sampling._scoring_replaced_by(object.__new__(GRPOTrainer)) is None


# --- two processes --------------------------------------------------------------------------

def test_dynamic_sampling_on_two_processes_takes_the_same_rounds_and_fills_each_share(tmp_path):
    """Each process fills its own places from its own groups; both run every round (collectives)."""
    dataset = rows([i % 4 == 0 for i in range(80)])  # a quarter of the prompts have spread
    world = World(2)
    trainers = [FakeTrainer(tmp_path / f"r{r}", dataset, world, r) for r in range(2)]
    for trainer in trainers:
        wired(trainer, max_rounds=12, rollout_log=False, learning_metrics=False)  # (accelerate's gather_object)
    outs: list = [None, None]
    errors: list = []

    def work(rank):
        try:
            indices = [1, 2, 5] if rank == 0 else [4, 8, 12]  # rank 1 starts full of spread
            outs[rank] = step(trainers[rank], repeated(dataset, indices))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
            world.barrier.abort()

    threads = [threading.Thread(target=work, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert trainers[0].calls == trainers[1].calls > 1
    for out in outs:
        assert len(trained(out)) == 6
    assert trained(outs[1]) == [(1, i) for i in range(6)]  # its dataloader batch, all spread
    metrics = trainers[0]._metrics["train"]
    assert metrics == trainers[1]._metrics["train"]  # global figures, the same on every process
    assert metrics["sampling/rounds"] == [trainers[0].calls]
    tokens = sum(out["completion_mask"].sum().item() for out in outs)  # recounted over both processes
    assert outs[0]["num_items_in_batch"].item() == outs[1]["num_items_in_batch"].item() == tokens


# --- the run doctor -------------------------------------------------------------------------

def test_dynamic_sampling_most_groups_set_aside_is_diagnosed_with_its_fixes():
    from axolotl_grpo_plugin.config.args import DoctorSettings
    from axolotl_grpo_plugin.observe.doctor import Doctor

    doctor = Doctor(DoctorSettings(steps=2))
    # TRL's frac_reward_zero_std counts every round's groups: 0.75 here, yet the trained batch has spread
    busy = {"grad_norm": 0.3, "frac_reward_zero_std": 1.0, "sampling/zero_std_trained": 0.0,
            "sampling/groups_kept": 4.0, "sampling/groups_discarded": 12.0}
    healthy = {**busy, "sampling/groups_discarded": 2.0}
    assert doctor.observe(healthy, 1) == [] and doctor.observe(busy, 2) == []
    (finding,) = doctor.observe(busy, 3)
    assert finding.signature == "groups_set_aside" and "most groups set aside" in finding.message
    for fix in ("pass_rate_filter", "trl.num_generations", "--pass-rates"):
        assert fix in finding.message
    assert "zero_variance" not in {f.signature for f in doctor.findings}  # the trained batch has spread
    # at the cap the trained batch itself has none: that is zero variance, as without dynamic sampling
    stuck = {**busy, "sampling/zero_std_trained": 1.0}
    assert [f.signature for f in doctor.observe(stuck, 4) + doctor.observe(stuck, 5)] == ["zero_variance"]


# --- the report ------------------------------------------------------------------------------

def test_dynamic_sampling_report_shows_the_share_set_aside_and_each_rollouts_fate(tmp_path):
    from axolotl_grpo_plugin.report import collect, render_html
    from axolotl_grpo_plugin.report.data import columns

    dataset = rows([False, False] + [True] * 98)
    trainer = FakeTrainer(tmp_path, dataset)
    wired(trainer, max_rounds=4)
    step(trainer, repeated(dataset, [0, 1, 2]))  # 2 of round 1's 3 groups set aside
    step(trainer, repeated(dataset, [4, 5, 6]))  # all spread
    lifecycle = next(c for c in trainer.callbacks if type(c).__name__ == "RolloutLogLifecycle")
    lifecycle.on_train_end(None, None, None)  # the log's lifecycle: the deferred records out
    data = collect(read_everything(tmp_path, everything=True))
    assert sorted(data.sampling) == [1, 2]
    generated = sum(s["kept"] + s["discarded"] for s in data.sampling.values())
    assert data.sampling[1]["discarded"] == 2 and data.sampling[2]["discarded"] == 0
    page = render_html(data, "run")
    share = 2 / generated * 100
    assert f"{share:.1f} % of the generated groups were set aside" in page
    meta, _, _ = columns(data)
    fates = dict(zip(zip(meta["cols"]["step"], meta["cols"]["round"], meta["cols"]["group"]), meta["cols"]["fate"]))
    assert sum(f == SET_ASIDE for f in fates.values()) == 2 and None in fates.values()
    assert "dynamic-sampling" not in render_html(collect(r for r in read_everything(tmp_path, everything=True)
                                                         if r.get("type") != "sampling"), "run")


# --- the bench: plain against dynamic sampling, from two rollout logs ---------------------------

def test_dynamic_sampling_bench_counts_trained_groups_without_spread_and_spread_per_token(tmp_path):
    import sys

    from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.dynamic_sampling_share import compare

    def group(step, number, rewards, fate=None, rnd=None, length=10):
        extra = {**({"round": rnd} if rnd else {}), **({"sampling": fate} if fate else {})}
        return [{"step": step, "mode": "train", "group": number, "reward": r, "length": length, **extra}
                for r in rewards]

    spread, flat = [0.0, 1.0], [1.0, 1.0]
    plain = RolloutLogWriter(tmp_path / "plain")
    for s in (1, 2):  # one of two groups has spread: 80 tokens, 2 of 4 trained groups without spread
        plain.write_step(group(s, 0, spread) + group(s, 1, flat))
    plain.close()
    dynamic = RolloutLogWriter(tmp_path / "dynamic")
    dynamic.write_step(group(1, 0, flat, "set_aside", 1) + group(1, 1, spread, None, 1)
                       + group(1, 0, spread, None, 2) + group(1, 1, spread, "carried", 2))
    dynamic.write_step(group(2, 0, spread, None, 1) + group(2, 1, flat, "set_aside", 1)
                       + group(2, 0, spread, "carried", 2) + group(2, 1, flat, "set_aside", 2))
    dynamic.close()
    result = compare(tmp_path / "plain", tmp_path / "dynamic")
    assert result["tokens"] == 80  # the smaller run's: the dynamic run's first step alone is 80
    assert (result["plain"]["trained_groups"], result["plain"]["zero_std_trained"]) == (4, 0.5)
    assert result["plain"]["spread_per_1m_tokens"] == pytest.approx(2 / 80 * 1e6)
    dyn = result["dynamic"]
    # step 1 only (80 tokens): 2 trained, its carry never trained within the budget
    assert (dyn["steps"], dyn["set_aside"], dyn["trained_groups"], dyn["zero_std_trained"]) == (1, 1, 2, 0.0)
    assert result["spread_ratio"] == pytest.approx(1.0)
    whole = compare(tmp_path / "plain", tmp_path / "dynamic", tokens=160)["dynamic"]
    assert (whole["steps"], whole["trained_groups"], whole["set_aside"]) == (2, 4, 3)  # step 1's carry counts
