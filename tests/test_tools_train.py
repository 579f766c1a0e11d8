"""A real CPU `axolotl train` with `grpo_plugin.tools: [calculator]` (issue 49, items 1, 3 and 7):
the tools reach TRL's trainer, TRL's tool loop parses the model's call, runs the contained
calculator and generates again, the final answer is what the rewards score, and no token of the
tool's result carries loss. The policy's text is scripted (tests/fixtures/scripted_generation.py):
the tiny model would never call a tool, and what is under test is everything around it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, run_axolotl_train


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.integration
def test_the_calculator_is_called_in_rollouts_and_its_result_carries_no_loss(tmp_path, embedded_model_dir):
    from transformers import AutoTokenizer

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    cfg.update(base_model=str(embedded_model_dir), chat_template="qwen_25", max_steps=2,
               output_dir=str(tmp_path / "out"), dataset_prepared_path=str(tmp_path / "prepared"),
               plugins=[*cfg["plugins"], "scripted_generation.ScriptedGenerationPlugin"],
               grpo_plugin={"tools": ["calculator"], "max_tool_calls": 2})
    cfg["trl"]["max_completion_length"] = 320  # the call, the tool turn and the answer, byte-level
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    config = tmp_path / "tools.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(config, tmp_path, timeout=600,
                                    PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), str(FIXTURES),
                                                                          os.environ.get("PYTHONPATH")])))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert len(steps) == 2
    for step in steps:
        assert step["tools/call_frequency"] == 1.0 and step["tools/failure_frequency"] == 0.0
        assert step["tools/errors"] == 0.0 and step["rewards/strict_format_reward_func/mean"] == 0.5
        assert step["tools/error_rate"] == 0.0 and 0.0 < step["tools/masked_fraction"] < 0.5
        assert step["rewards/correctness_reward_func/mean"] == 0.0  # the smoke data's answers are not 42
        assert step["observe/format_strict"] == 1.0  # the final answer's format, as the rewards read it

    from axolotl_grpo_plugin.observe import read_rollouts

    rollouts = list(read_rollouts(tmp_path / "out"))
    assert len(rollouts) == 8
    for rollout in rollouts:
        (recorded,) = rollout["tool_calls"]
        seconds = recorded.pop("seconds")  # the contained call's own time
        assert recorded == {"name": "calculator", "arguments": {"expression": "6*7"}, "result": "42"}
        assert 0.0 <= seconds < 1.0
        assert rollout["completion"].startswith("<tool_call>") and rollout["completion"].endswith("</answer>")

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_model_dir))
    batches = json.loads((tmp_path / "out" / "scripted_batches.json").read_text())
    assert batches
    for batch in batches:
        for ids, mask, tool_mask in zip(batch["completion_ids"], batch["completion_mask"], batch["tool_mask"]):
            trained = tokenizer.decode([t for t, m, k in zip(ids, mask, tool_mask) if m and k])
            masked = tokenizer.decode([t for t, m, k in zip(ids, mask, tool_mask) if m and not k])
            assert '"name": "calculator"' in trained and "<answer>\n42\n</answer>" in trained
            assert "<tool_response>\n42\n</tool_response>" in masked  # the calculator's result: no loss
            assert "42" not in trained.split("</tool_call>")[0]  # the model never wrote the result itself
