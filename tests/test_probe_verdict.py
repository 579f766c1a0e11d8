"""The probe's verdict on stand-in generations: the cookbook GSM8K config and rewards, the real
scoring path (`probe()` cuts, scores cut and uncut, judges), and a generator that writes what a
raw base model, a cold-started (SFT) model or a rambling model writes. No model runs, so the
verdict's reasoning is tested in seconds: a base model without the format is told it needs a
cold start (not a length or a group size), an R1-format model is told it will learn, and
truncation is blamed only where the cut-off takes reward away."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.probe import core
from axolotl_grpo_plugin.probe.findings import format_summary, to_json
from axolotl_grpo_plugin.sampling import models


REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "axolotl_grpo_plugin" / "data" / "gsm8k_sample.jsonl"
ANSWERS = {json.loads(line)["question"]: json.loads(line)["answer"].rsplit("####", 1)[1].strip()
           for line in DATA.read_text().splitlines()}
COOKBOOK = ["correctness", "int", "strict_format", "soft_format", "xmlcount"]


def r1(reasoning: str, answer: str) -> str:
    return f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>"


class StandIn:
    """Writes `write(question, answer, j)` as the j-th completion of each prompt, tokenized with
    the run's tokenizer and ended with EOS (unless the token budget cuts it), as a generator
    returns them."""

    name = "stand-in"

    def __init__(self, tokenizer, write):
        self.tok, self.write = tokenizer, write
        self.closed = 0

    def close(self):
        self.closed += 1

    def generate(self, prompts, settings, progress=None):
        out = []
        for ids in prompts:
            text = self.tok.decode(ids)
            question = next(q for q in ANSWERS if q in text)
            group = []
            for j in range(settings.n):
                completion = self.write(question, ANSWERS[question].replace(",", ""), j)
                token_ids = self.tok.encode(completion, add_special_tokens=False)
                token_ids.append(self.tok.eos_token_id)  # ends, unless the budget cuts it first
                token_ids = token_ids[:settings.max_new_tokens]
                group.append((self.tok.decode(token_ids, skip_special_tokens=True), token_ids))
            out.append(group)
        return out


@pytest.fixture
def cookbook_config(embedded_model_dir, tmp_path) -> Path:
    cfg = {"base_model": str(embedded_model_dir), "rl": "grpo", "chat_template": "tokenizer_default",
           "trl": {"num_generations": 8, "max_completion_length": 48, "temperature": 1.0,
                   "reward_funcs": COOKBOOK},
           "datasets": [{"path": str(DATA), "type": "gsm8k"}], "micro_batch_size": 16,
           "gradient_accumulation_steps": 1, "output_dir": str(tmp_path / "out")}
    path = tmp_path / "cookbook.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run_probe(config: Path, monkeypatch, write, budget: int = 96) -> dict:
    built = []
    monkeypatch.setattr(models, "make_generator",
                        lambda model, tok, cfg, **kw: built.append(StandIn(tok, write)) or built[-1])
    result = core.probe(config, prompts=6, generations=[4, 8], budget=budget, progress=False)
    assert [g.closed for g in built] == [1]  # the probe stops the engine it sampled with
    data = to_json(result)
    data["summary"] = format_summary(result)
    return data


def prose(question: str, answer: str, j: int) -> str:
    """What the raw base answers with the cookbook prompt: prose, no tags; every other one
    rambles past the cut-off and the budget, with no tag either."""
    words = re.findall(r"\w+", question)
    text = f"The answer is {answer} because " + " ".join(words[:6])
    return text + (" and so on" * 60 if j % 2 else ".")


def test_base_model_without_the_format_is_told_to_cold_start(cookbook_config, monkeypatch):
    data = run_probe(cookbook_config, monkeypatch, prose)
    v = data["verdict"]
    assert not v["learns"]
    assert data["format_never_met"] and data["format_compliance"] == 0
    assert "no probed completion has the format" in v["because"][0]
    assert any("cold start" in c for c in v["change"])
    # half the completions are cut at 48 tokens, but uncut they earn nothing either: the length
    # is not the cause, and neither a length nor a group size is recommended
    assert data["truncation_rate"] > 0.10 and not data["truncation_hides_signal"]
    assert not any("max_completion_length" in c or "num_generations" in c for c in v["change"])
    # the budget truncates too: no length is recommended, never the cap it was measured at
    assert data["recommended_max_completion_length"] is None
    assert f"recommended trl.max_completion_length: {data['budget']}" not in data["summary"]
    assert data["recommended_num_generations"] is None
    assert "recommended trl.num_generations" not in data["summary"]


def test_a_stray_tag_now_and_then_still_points_to_the_cold_start(cookbook_config, monkeypatch):
    """SmolLM2's base at 32 x 8 (docs/benchmarks.md): one completion in many writes a lone tag, so
    xmlcount is not constant and the format is not 'never met', yet nothing is in the strict format
    and almost no group has signal. The fix is still the cold start, not easier prompts: the answer
    the correctness reward reads is inside the format."""
    written = []

    def prose_with_a_stray_tag(question, answer, j):  # the first completion of the run has one tag
        written.append(question)
        text = prose(question, answer, 0)
        return text + " </answer>" if len(written) == 1 else text

    data = run_probe(cookbook_config, monkeypatch, prose_with_a_stray_tag)
    v = data["verdict"]
    assert not v["learns"] and not data["format_never_met"] and data["format_compliance"] == 0
    assert any("none of the" in b and "strict format" in b for b in v["because"]), v
    assert any("cold start" in c for c in v["change"]) and not any("easier prompts" in c for c in v["change"]), v


def test_cold_started_model_in_r1_format_is_told_it_will_learn(cookbook_config, monkeypatch):
    def sft(question, answer, j):  # the format always; right on half the samples
        return r1(f"{question[:30]} gives {answer}", answer if j % 2 else str(int(answer) + 1))

    data = run_probe(cookbook_config, monkeypatch, sft)
    assert data["verdict"]["learns"], data["verdict"]["line"]
    assert data["format_compliance"] == 1 and not data["format_never_met"]
    assert "cold start" not in data["verdict"]["line"]
    assert data["recommended_num_generations"] is not None


def test_truncation_is_blamed_when_the_cut_off_takes_the_reward(cookbook_config, monkeypatch):
    def long_r1(question, answer, j):  # R1 format whose answer tag lands past 48 tokens
        return r1(question + " " + question[:40], answer)

    data = run_probe(cookbook_config, monkeypatch, long_r1, budget=256)
    v = data["verdict"]
    assert data["truncation_hides_signal"]
    assert not data["format_never_met"]  # uncut, the completions have the format
    assert not v["learns"] and "hit trl.max_completion_length 48" in v["line"]
    length = data["recommended_max_completion_length"]
    assert length is not None and 48 < length < data["budget"]
    assert f"set trl.max_completion_length: {length}" in v["line"]


def test_model_dir_beside_a_hub_id_config_offline(cookbook_config, embedded_model_dir, monkeypatch):
    """`--model DIR` with a config naming a Hub id (the SmolLM2 configs, offline): the budget's
    prompt count uses the probed model's tokenizer, not the unreachable Hub id."""
    cfg = yaml.safe_load(cookbook_config.read_text())
    cfg["base_model"] = "HuggingFaceTB/SmolLM2-135M-Instruct"
    cookbook_config.write_text(yaml.safe_dump(cfg))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(models, "make_generator", lambda model, tok, cfg, **kw: StandIn(tok, prose))
    result = core.probe(cookbook_config, prompts=2, generations=[4], budget=96, progress=False,
                        model=str(embedded_model_dir))
    assert result.recommended_max_model_len and result.recommended_max_model_len > 96


def test_one_probe_reads_its_config_once(cookbook_config, monkeypatch, tmp_path):
    """Issue 64: the probe, its vLLM budget and --write-filtered read the config the Sampler read,
    not the file again (three reads before)."""
    from axolotl_grpo_plugin.config import load
    from axolotl_grpo_plugin.probe.findings import write_filtered

    reads = []
    real = load.read_yaml_text
    monkeypatch.setattr(load, "read_yaml_text", lambda path, *a, **k: reads.append(str(path)) or real(path, *a, **k))
    monkeypatch.setattr(models, "make_generator", lambda model, tok, run, **kw: StandIn(tok, prose))
    result = core.probe(cookbook_config, prompts=4, generations=[4], budget=96, progress=False)
    write_filtered(result, tmp_path / "filtered.jsonl")
    assert result.recommended_max_model_len  # the stats ran, on the config already read
    assert reads.count(str(cookbook_config)) == 1, reads
