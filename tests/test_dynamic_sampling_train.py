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
from conftest import REPO_ROOT, run_axolotl_train

from axolotl_grpo_plugin.observe import read_rollouts
from axolotl_grpo_plugin.rollouts.log import read_rollouts as read_records
from axolotl_grpo_plugin.rollouts.spread import group_std


FIXTURES = Path(__file__).resolve().parent / "fixtures"
GROUP = 2


def train(tmp_path: Path, model_dir: Path, *, steps: int, plugins=(), grpo=None, **overrides):
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    cfg.update(base_model=str(model_dir), max_steps=steps, micro_batch_size=8, output_dir=str(tmp_path / "out"),
               dataset_prepared_path=str(tmp_path / "prepared"),
               plugins=[*cfg["plugins"], "batch_spy.BatchSpyPlugin", *plugins],
               grpo_plugin={"dynamic_sampling": {"max_rounds": 6}, **(grpo or {})})
    cfg["trl"].update(num_generations=GROUP, max_completion_length=16,
                      reward_funcs=["spread_reward.prompt_spread", "strict_format"])
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg.update(overrides)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), str(FIXTURES), os.environ.get("PYTHONPATH")]))
    proc, logged = run_axolotl_train(config, tmp_path, timeout=900, PYTHONPATH=path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc, logged


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


@pytest.mark.integration
def test_dynamic_sampling_trains_only_groups_with_spread_and_uses_the_carried_ones(tmp_path, embedded_model_dir):
    steps = 4
    proc, logged = train(tmp_path, embedded_model_dir, steps=steps)
    out = tmp_path / "out"
    records = list(read_rollouts(out))
    batches = [json.loads(line) for line in (out / "trained_batches.jsonl").read_text().splitlines()]
    groups = groups_of(records)
    places = 8 // GROUP
    assert len(logged) == steps
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
        rounds = max(k[1] for k in mine)
        log = logged[step - 1]
        assert log["sampling/rounds"] == rounds and log["sampling/cap_hit"] == 0
        assert log["sampling/zero_std_trained"] == 0
        assert log["sampling/groups_discarded"] == len(set_aside)
        assert log["sampling/groups_kept"] == len(kept) + len(carried)
        assert log["sampling/groups_carried"] == len(carried)
        carried_total += len(carried) * (step < steps)
        carried_in = carried
    assert carried_total > 0, "no group was carried: the test proves nothing about the carry"
    assert sum(log["sampling/rounds"] for log in logged) > steps  # extra rounds were generated
    # num_items_in_batch recounted over the restacked batch
    assert all(b["num_items_in_batch"] == b["loss_tokens"] for b in batches)
    sampling = [r for r in read_records(out, everything=True) if r.get("type") == "sampling"]
    assert [r["step"] for r in sampling] == list(range(1, steps + 1))
