"""`probe` with grpo_plugin.tools (issue 49, item 6): the probe samples through the same tool loop
as evaluate and training, reports tool use, and says when the model never calls its tools."""

from __future__ import annotations

import json

import pytest
from test_evaluate_tools import ANSWER, Scripted, call
from test_probe import _config


def tool_config(tmp_path, model_dir, **trl):
    return _config(tmp_path, model_dir, "smoke.yaml", {
        "chat_template": "qwen_25", "grpo_plugin": {"tools": ["calculator"], "max_tool_calls": 2}}, **trl)


def test_a_model_that_never_calls_its_tools_is_told_how_to_teach_it(embedded_model_dir, tmp_path, capsys):
    import torch

    from axolotl_grpo_plugin.commands.probe import main

    torch.set_num_threads(1)
    config = tool_config(tmp_path, embedded_model_dir)
    assert main([str(config), "--prompts", "2", "--budget", "32", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "tools: 0.00 calls per completion, 0% of completions call one" in text
    assert "note: the model never calls its tools" in text and "gsm8k_tools" in text


@pytest.fixture
def scripted(monkeypatch):
    """probe's generator replaced by a policy that calls the calculator, then answers."""
    from axolotl_grpo_plugin.sampling import generation, models

    made = []

    def make_generator(model, tok, run, **kwargs):
        made.append(Scripted(tok, call()))
        return made[-1]

    monkeypatch.setattr(models, "make_generator", make_generator)
    monkeypatch.setattr(generation, "release", lambda gen: None)
    return made


def test_tool_use_is_reported_and_a_cut_completion_is_scored_on_its_final_turn(
        scripted, embedded_model_dir, tmp_path, capsys):
    from axolotl_grpo_plugin.commands.probe import main

    ample = tool_config(tmp_path, embedded_model_dir, max_completion_length=400)
    assert main([str(ample), "--prompts", "2", "--budget", "400", "--json", "--no-progress"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "<tool_response>" in scripted[-1].prompts[-1]  # the second turn saw the tool's answer
    assert data["tools"] == {"tool_calls_per_answer": 1.0, "tool_error_rate": 0.0, "answers_with_tool_calls": 1.0}
    assert data["format_compliance"] == 1.0 and data["truncation_rate"] == 0.0
    assert not any("tools" in note for note in data["verdict"]["notes"])

    # cut inside the tool turn: the trainer's rewards would read no final answer at all
    short = tool_config(tmp_path, embedded_model_dir, max_completion_length=len(call()) // 4)
    assert main([str(short), "--prompts", "2", "--budget", "400", "--json", "--no-progress"]) == 0
    cut = json.loads(capsys.readouterr().out)
    assert cut["truncation_rate"] == 1.0 and cut["format_compliance"] == 0.0
    assert cut["truncation_hides_signal"]  # uncut, the final turn is in format


def test_most_calls_failing_is_a_note(monkeypatch, embedded_model_dir, tmp_path, capsys):
    from axolotl_grpo_plugin.commands.probe import main
    from axolotl_grpo_plugin.sampling import generation, models

    monkeypatch.setattr(models, "make_generator", lambda model, tok, run, **kw: Scripted(tok, call(name="search")))
    monkeypatch.setattr(generation, "release", lambda gen: None)
    config = tool_config(tmp_path, embedded_model_dir, max_completion_length=400)
    assert main([str(config), "--prompts", "2", "--budget", "400", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "100% of the calls fail" in text and "note: most tool calls fail" in text
    assert ANSWER  # the scripted policy answers after the failed call, as the model would
