"""Keep-best on a run that really degrades: a real `axolotl train` on CPU of the demo's
pre-trained tiny base, whose learning rate a test-only Axolotl plugin multiplies by 1,000 after
step 3 (1e-3 -> 1.0), wrecking the model. Keep-best must name a step from before the spike (the
best logged one), that checkpoint must exist, and the end-of-run line must say by how much it
beat the last evaluation.

The metric is `eval/pass@8` (8 sampled completions per held-out problem, judged by the
`correctness` reward): a task metric that really moves here. The base answers greedily in plain
text, which `correctness` scores 0 (so greedy `eval/accuracy` is 0 throughout), but about one
sample in four uses the <answer> format, and pass@8 on the first 16 demo_test problems is
0.2-0.3; a wrecked model solves none. At 1e-3 the pre-spike evaluations also differ (on this
base and seed 0.19, 0.19, 0.31: the best is step 3, not the first evaluation). (A random-weight
model would not do: its greedy and sampled output scores 0 on every task metric before the
spike already.)"""

from __future__ import annotations

import json
import os

import pytest
import yaml

from axolotl_grpo_plugin.evaluate import periodic
from axolotl_grpo_plugin.rollouts.log import EVAL, read_rollouts, record_kind


SPIKE_AFTER = 3
FACTOR = 1_000.0
METRIC = "eval/pass@8"

SPIKE_PLUGIN = f'''
"""Test-only Axolotl plugin: multiply the learning rate by {FACTOR:g} from step {SPIKE_AFTER + 1} on."""

from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback


class LRSpike(TrainerCallback):
    said = False

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        # the step about to run is global_step + 1; the scheduler resets lr after each
        # optimizer step, so it is set again before every spiked step
        if state.global_step >= {SPIKE_AFTER} and optimizer is not None:
            for group in optimizer.param_groups:
                group["lr"] = args.learning_rate * {FACTOR}
            if not self.said:
                self.said = True
                print(f"lr spike: step {{state.global_step + 1}} on at lr {{args.learning_rate * {FACTOR}:g}}",
                      flush=True)


class LRSpikePlugin(BasePlugin):
    def add_callbacks_post_trainer(self, cfg, trainer):
        return [LRSpike()]
'''


@pytest.fixture(scope="module")
def demo_base(repo_root) -> str:
    """The demo's imperfect pre-trained base (cached; about a minute to build on 2 cores)."""
    from axolotl_grpo_plugin.embedded.pretrain import build_base

    return str(build_base(out=repo_root / ".cache" / "embedded", progress=False).model_dir)


@pytest.mark.integration
@pytest.mark.slow
def test_keep_best_names_the_step_before_a_learning_rate_spike(repo_root, demo_base, tmp_path):
    from conftest import run_axolotl_train

    from axolotl_grpo_plugin.config.load import read_yaml

    (tmp_path / "lr_spike.py").write_text(SPIKE_PLUGIN)
    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["plugins"].append("lr_spike.LRSpikePlugin")
    cfg["trl"]["temperature"] = 0.7  # the demo's: the tiny base's arithmetic falls apart at 1.0
    cfg["grpo_plugin"] = {
        "eval_every": {"steps": 1, "limit": 16, "samples": 8, "max_new_tokens": 64,
                       "dataset": str(repo_root / "axolotl_grpo_plugin/data/demo_test.jsonl")},
        "keep_best": {"metric": METRIC, "mode": "max"},
    }
    out = tmp_path / "out"
    cfg.update(base_model=demo_base, output_dir=str(out), max_steps=SPIKE_AFTER + 2,
               learning_rate=1.0e-3, dataset_prepared_path=str(tmp_path / "prepared"),
               save_strategy="steps", save_steps=100)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, logged = run_axolotl_train(config, cwd=tmp_path, timeout=900,
                                     PYTHONPATH=os.pathsep.join([str(repo_root), str(tmp_path)]))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert f"lr spike: step {SPIKE_AFTER + 1} on" in output and len(logged) == SPIKE_AFTER + 2

    evals = {r["step"]: r["metrics"][METRIC] for r in read_rollouts(out, everything=True)
             if record_kind(r) == EVAL}
    assert sorted(evals) == list(range(1, SPIKE_AFTER + 3)), evals
    before = {s: v for s, v in evals.items() if s <= SPIKE_AFTER}
    after = {s: v for s, v in evals.items() if s > SPIKE_AFTER}
    peak = max(before.values())
    # the spike really degraded the model: every evaluation after it is far below the peak
    assert peak >= 0.1 and max(after.values()) < peak / 2, evals
    best_step = min(s for s, v in before.items() if v == peak)  # a tie keeps the earlier step

    best = json.loads((out / periodic.BEST_FILE).read_text())
    assert (best["step"], best["value"]) == (best_step, pytest.approx(peak)), (best, evals)
    assert (best["last_step"], best["last_value"]) == (SPIKE_AFTER + 2, pytest.approx(evals[SPIKE_AFTER + 2]))
    checkpoint = out / f"checkpoint-{best_step}"
    assert best["checkpoint"] == str(checkpoint)
    assert (checkpoint / "model.safetensors").is_file()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    assert state["best_global_step"] == best_step
    margin = peak - evals[SPIKE_AFTER + 2]
    assert (f"grpo_plugin.keep_best: best {METRIC} = {peak:.4g} at step {best_step} ({checkpoint}); "
            f"it beat the last evaluation (step {SPIKE_AFTER + 2}, {evals[SPIKE_AFTER + 2]:.4g}) "
            f"by {margin:.4g}") in output, output[-3000:]
    print(f"\n{METRIC} per step: {evals}; best step {best_step}, beat the last by {margin:.3g}")
