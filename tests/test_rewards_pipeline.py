"""The pipeline-check reward (rewards/pipeline.py), and its old import path
`axolotl_grpo_plugin.vllm.probe_reward.char_variety`, kept for existing configs (issue 27)."""

from __future__ import annotations

import pytest
from test_path_rewards import load_as_axolotl, resolved

from axolotl_grpo_rewards.pipeline import char_variety


OLD_PATH = "axolotl_grpo_plugin.vllm.probe_reward.char_variety"
NEW_PATH = "axolotl_grpo_rewards.pipeline.char_variety"


def test_char_variety_varies_and_never_raises():
    scores = char_variety(["aaaa", "abcd", "", [{"role": "assistant", "content": "aabb"}], None, [{"x": 1}]])
    assert scores == [0.25, 1.0, 0.0, 0.5, 0.0, 0.0]
    assert char_variety("not a list") == []


@pytest.mark.parametrize("path", [OLD_PATH, NEW_PATH])
def test_both_paths_load_the_same_function_through_axolotl(path):
    reward = load_as_axolotl(resolved(path))  # the contained wrapper Axolotl's own loader imports
    assert reward.__wrapped__ is char_variety
    assert reward.__name__ == "char_variety"  # TRL's metric rewards/char_variety/mean is unchanged
    assert reward(prompts=["p", "p"], completions=["aaaa", "abcd"]) == [0.25, 1.0]


def test_the_shipped_configs_name_the_new_path():
    from pathlib import Path

    configs = sorted((Path(__file__).resolve().parents[1] / "configs").glob("cpu-vllm-*.yaml"))
    assert configs and all(NEW_PATH in c.read_text() and OLD_PATH not in c.read_text() for c in configs)
