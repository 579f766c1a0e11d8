"""Dynamic sampling through a real CPU `axolotl train` on the embedded tiny model (issue 66): the
batch the loss sees is filled with groups that have reward spread, in whole groups, and the groups
carried beyond one step's batch are the first ones the next step trains on.

The reward (tests/fixtures/spread_reward.py) gives a group spread by its prompt alone, so which
groups are kept follows from the prompts drawn (seeded); a test-only plugin
(tests/fixtures/batch_spy.py) records every batch the loss sees, which is compared with what the
rollout log says was generated, kept, carried and set aside."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, free_port, run_axolotl_train

from axolotl_grpo_plugin.observe import read_rollouts
from axolotl_grpo_plugin.rollouts.log import read_rollouts as read_records
from axolotl_grpo_plugin.rollouts.spread import group_std


FIXTURES = Path(__file__).resolve().parent / "fixtures"
GROUP = 2


def train(tmp_path: Path, model_dir: Path, *, steps: int, base: str = "smoke.yaml", plugins=(), grpo=None,
          trl=None, logged_steps: int | None = None, **overrides):
    """`axolotl train` on configs/BASE with dynamic sampling, the spread reward and the batch spy;
    returns the logged steps (`logged_steps` of them: all `steps` unless resumed) and the output folder."""
    cfg = yaml.safe_load((REPO_ROOT / "configs" / base).read_text())
    cfg.update(base_model=str(model_dir), max_steps=steps, micro_batch_size=8, output_dir=str(tmp_path / "out"),
               dataset_prepared_path=str(tmp_path / "prepared"),
               plugins=[*cfg["plugins"], "batch_spy.BatchSpyPlugin", *plugins],
               grpo_plugin={**cfg.get("grpo_plugin", {}), "dynamic_sampling": {"max_rounds": 6}, **(grpo or {})})
    cfg["trl"].update({"num_generations": GROUP, "max_completion_length": 16,
                       "reward_funcs": ["spread_reward.prompt_spread", "strict_format"], **(trl or {})})
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    if cfg["trl"].get("vllm_mode") == "server":
        cfg["vllm"]["port"] = free_port()
    cfg.update(overrides)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), str(FIXTURES), os.environ.get("PYTHONPATH")]))
    proc, logged = run_axolotl_train(config, tmp_path, timeout=900, PYTHONPATH=path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(logged) == (steps if logged_steps is None else logged_steps)
    return logged, tmp_path / "out"


def groups_of(records: list[dict]) -> dict[tuple, list[dict]]:
    """(step, round, group) -> its rollouts."""
    out: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        out[(r["step"], r["round"], r["group"])].append(r)
    return dict(out)


def trained_rows(batches: list[dict], step: int) -> Counter:
    return Counter((text, round(adv, 4)) for b in batches if b["step"] == step
                   for text, adv in zip(b["completions"], b["advantages"], strict=True))


def rows(groups: list[list[dict]]) -> Counter:
    return Counter((r["completion"], round(r["advantage"], 4)) for g in groups for r in g)


def assert_filled_with_spread(out: Path, logged: list[dict], places: int) -> int:
    """Each step's batch, as the loss saw it, is the groups carried from the step before and the
    step's kept ones, all with reward spread, `places` groups; the metrics and the `sampling`
    records say the same. Returns how many groups were carried and then trained."""
    steps = len(logged)
    records = list(read_rollouts(out))
    batches = [json.loads(line) for line in (out / "trained_batches.jsonl").read_text().splitlines()]
    groups = groups_of(records)
    assert all(len(g) == GROUP for g in groups.values())
    carried_in: list[list[dict]] = []
    carried_total = 0
    for step in range(1, steps + 1):
        mine = {k: g for k, g in groups.items() if k[0] == step}
        kept = [g for g in mine.values() if "sampling" not in g[0]]
        carried = [g for g in mine.values() if g[0].get("sampling") == "carried"]
        set_aside = [g for g in mine.values() if g[0].get("sampling") == "set_aside"]
        assert not [g for g in mine.values() if g[0].get("sampling") in ("cap_fill", "dropped")]
        # every group the step trains has spread, every group it set aside has none
        assert all(group_std(r["reward"] for r in g) > 1e-6 for g in kept + carried)
        assert all(group_std(r["reward"] for r in g) == 0 for g in set_aside)
        # the batch the loss saw: the groups carried from the step before, then this step's kept ones
        assert len(carried_in) + len(kept) == places
        assert trained_rows(batches, step) == rows(carried_in + kept), step
        log = logged[step - 1]
        assert log["sampling/rounds"] == max(k[1] for k in mine) and log["sampling/cap_hit"] == 0
        assert log["sampling/zero_std_trained"] == 0
        assert log["sampling/groups_discarded"] == len(set_aside)
        assert log["sampling/groups_kept"] == len(kept) + len(carried)
        assert log["sampling/groups_carried"] == len(carried)
        carried_total += len(carried) * (step < steps)
        carried_in = carried
    # num_items_in_batch recounted over the restacked batch
    assert all(b["num_items_in_batch"] == b["loss_tokens"] for b in batches)
    sampling = [r for r in read_records(out, everything=True) if r.get("type") == "sampling"]
    assert [r["step"] for r in sampling] == list(range(1, steps + 1))
    return carried_total


@pytest.mark.integration
def test_dynamic_sampling_trains_only_groups_with_spread_and_uses_the_carried_ones(tmp_path, embedded_model_dir):
    """transformers generation (configs/smoke.yaml)."""
    logged, out = train(tmp_path, embedded_model_dir, steps=4)
    assert assert_filled_with_spread(out, logged, places=8 // GROUP) > 0, "no group carried: the test proves nothing"
    assert sum(log["sampling/rounds"] for log in logged) > len(logged)  # extra rounds were generated


@pytest.mark.integration
def test_dynamic_sampling_with_tools_runs_the_tool_loop_in_every_round(tmp_path, embedded_model_dir):
    """TRL's tool loop with the contained calculator (the policy's text scripted, as in
    tests/test_tools_train.py): every round's rollouts called the tool, the batch still has only
    groups with spread, and the tool results still carry no loss after the restacking."""
    logged, out = train(tmp_path, embedded_model_dir, steps=2, chat_template="qwen_25",
                        plugins=["scripted_generation.ScriptedGenerationPlugin"],
                        grpo={"tools": ["calculator"], "max_tool_calls": 2}, trl={"max_completion_length": 320})
    assert_filled_with_spread(out, logged, places=8 // GROUP)
    assert sum(log["sampling/rounds"] for log in logged) > len(logged)
    records = list(read_rollouts(out))
    assert {r["round"] for r in records} >= {1, 2}
    assert all(r["tool_calls"][0]["result"] == "42" for r in records)
    batches = json.loads((out / "scripted_batches.json").read_text())
    assert batches and all(0 in row for b in batches for row in b["tool_mask"])  # the tool turn: no loss


@pytest.mark.integration
def test_dynamic_sampling_a_resumed_run_trains_the_checkpoints_carried_groups_first(tmp_path, embedded_model_dir):
    """The groups carried past step 2 are saved in checkpoint-2; a run resumed from it trains them
    at step 3, rows and advantages as the first run scored them."""
    _, out = train(tmp_path, embedded_model_dir, steps=2, save_strategy="steps", save_steps=2)
    carried = [g for key, g in groups_of(list(read_rollouts(out))).items()
               if key[0] == 2 and g[0].get("sampling") == "carried"]
    assert carried, "no group carried past step 2: the test proves nothing"
    assert (out / "checkpoint-2" / "dynamic_sampling_carry.rank0.pt").is_file()
    (out / "trained_batches.jsonl").unlink()
    train(tmp_path, embedded_model_dir, steps=3, logged_steps=1, resume_from_checkpoint=str(out / "checkpoint-2"))
    batches = [json.loads(line) for line in (out / "trained_batches.jsonl").read_text().splitlines()]
    assert {b["step"] for b in batches} == {3}
    step3 = trained_rows(batches, 3)  # TRL shuffles a batch's rows before the loss: compared as a multiset
    assert sum(step3.values()) == 8 and not rows(carried) - step3, (rows(carried), step3)
