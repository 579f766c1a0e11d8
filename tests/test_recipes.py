"""The recipes (issue 66, item 3): configs/gsm8k-dapo.yaml and the table of docs/dynamic-sampling.md,
each config with its paper's settings and passing `check`; DAPO's soft overlong punishment as the
registered reward `soft_overlong`, its lengths the config's."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.errors import GRPOConfigError


REPO = Path(__file__).resolve().parents[1]
RECIPES = {  # config -> the settings its paper publishes (docs/dynamic-sampling.md#recipes)
    "gsm8k.yaml": {"trl.beta": 0.0, "trl.num_generations": 16, "learning_rate": 1.0e-6},
    "gsm8k-dapo.yaml": {"trl.loss_type": "dapo", "trl.epsilon": 0.2, "trl.epsilon_high": 0.28, "trl.beta": 0.0,
                        "trl.top_p": 1.0, "grpo_plugin.dynamic_sampling.max_rounds": 10, "learning_rate": 1.0e-6},
    "gsm8k-dr-grpo.yaml": {"trl.loss_type": "dr_grpo", "trl.scale_rewards": "none", "trl.beta": 0.0},
    "gsm8k-gspo.yaml": {"trl.importance_sampling_level": "sequence", "trl.loss_type": "grpo", "trl.epsilon": 3.0e-4,
                        "trl.epsilon_high": 4.0e-4, "trl.beta": 0.0, "trl.generation_batch_size": 64,
                        "gradient_accumulation_steps": 1},
}


def value(cfg: dict, dotted: str):
    for part in dotted.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("name", RECIPES)
def test_each_recipe_has_its_papers_settings_and_passes_check(name):
    from test_configs import run_check  # a child: Axolotl's validation leaves logging handlers behind

    cfg = yaml.safe_load((REPO / "configs" / name).read_text())
    for key, expected in RECIPES[name].items():
        assert value(cfg, key) == expected, (name, key)
    proc = run_check(REPO, f"configs/{name}", "--gpu", "--processes", "1")
    assert proc.returncode == 0 and f"OK: configs/{name} is valid" in proc.stdout, proc.stdout + proc.stderr
    assert f"`configs/{name}`" in (REPO / "docs" / "dynamic-sampling.md").read_text()


def test_the_gspo_recipe_trains_each_rollout_batch_in_four_optimizer_steps():
    cfg = yaml.safe_load((REPO / "configs" / "gsm8k-gspo.yaml").read_text())
    step = cfg["micro_batch_size"] * cfg["gradient_accumulation_steps"]
    assert cfg["trl"]["generation_batch_size"] == 4 * step  # TRL's steps_per_generation 4


def test_the_dapo_recipe_punishes_overlong_completions_with_its_own_lengths():
    from axolotl_grpo_plugin.names import load_config

    cfg = load_config(REPO / "configs" / "gsm8k-dapo.yaml")
    assert "axolotl_grpo_plugin.reward_soft_overlong__512__102" in cfg["trl"]["reward_funcs"]


# --- the soft overlong punishment ----------------------------------------------------------------

@pytest.mark.parametrize("max_len, cache", [(100, 20), (512, 102), (20480, 4096), (16, 1)])
def test_soft_overlong_is_trls_soft_overlong_punishment(max_len, cache):
    from trl.rewards import get_soft_overlong_punishment

    from axolotl_grpo_rewards.overlong import soft_overlong_punishment

    ours, trls = soft_overlong_punishment(max_len, cache), get_soft_overlong_punishment(max_len, cache)
    lengths = sorted({0, 1, max_len - cache - 1, max_len - cache, max_len - cache + 1, max_len - 1, max_len,
                      max_len + 1, max_len + 50} - {-1})
    ids = [[7] * n for n in lengths if n >= 0]
    assert ours(completion_ids=ids) == trls(ids) and ours.__name__ == trls.__name__
    assert ours(completion_ids=[[1] * (max_len - cache)])[0] == 0.0 and ours(completion_ids=[[1] * max_len])[0] == -1.0
    assert ours(completions=["a", "b"]) == [None, None]  # no token ids: not applicable, never a guess


def resolved(reward_funcs: list, **plugin) -> list:
    from axolotl_grpo_plugin.names import load_config

    cfg = {"rl": "grpo", "trl": {"max_completion_length": 200, "reward_funcs": reward_funcs}}
    if plugin:
        cfg["grpo_plugin"] = plugin
    return load_config(cfg)["trl"]["reward_funcs"]


def test_the_registered_reward_takes_its_lengths_from_the_config_in_any_process():
    import axolotl_grpo_plugin

    (path,) = resolved(["soft_overlong"], overlong_cache=50)
    assert path == "axolotl_grpo_plugin.reward_soft_overlong__200__50"
    reward = getattr(axolotl_grpo_plugin, path.rsplit(".", 1)[1])  # as Axolotl imports it, in each rank
    assert reward(prompts=["p"] * 3, completions=["c"] * 3, completion_ids=[[1] * 150, [1] * 175, [1] * 200]) == \
        [0.0, -0.5, -1.0]
    assert pickle.loads(pickle.dumps(reward))(prompts=["p"], completions=["c"], completion_ids=[[1] * 175]) == [-0.5]
    assert resolved(["soft_overlong"]) == ["axolotl_grpo_plugin.reward_soft_overlong__200__40"]  # a fifth
    # a config whose names were resolved before (check, then train) is bound again to its own lengths
    assert resolved([path]) == ["axolotl_grpo_plugin.reward_soft_overlong__200__40"]


@pytest.mark.parametrize("cache", [200, 500])
def test_check_refuses_an_overlong_cache_not_below_the_completion_length(cache):
    from axolotl_grpo_plugin.check.rewards import check_overlong_cache
    from axolotl_grpo_plugin.config.run import read_run

    run = read_run({"trl": {"max_completion_length": 200, "reward_funcs": ["soft_overlong"]},
                    "grpo_plugin": {"overlong_cache": cache}})
    (problem,) = check_overlong_cache(run, None)
    assert problem.key == "grpo_plugin.overlong_cache" and "below 200" in problem.fix
    assert check_overlong_cache(read_run({"trl": {"max_completion_length": 200, "reward_funcs": ["correctness"]},
                                          "grpo_plugin": {"overlong_cache": cache}}), None) == []
    with pytest.raises(GRPOConfigError, match="grpo_plugin.overlong_cache"):
        read_run({"grpo_plugin": {"overlong_cache": 0}})
