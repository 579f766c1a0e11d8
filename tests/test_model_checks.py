"""`check` (and `axolotl train`'s register) on the model itself: a GGUF file or a folder that is
not a model, a tokenizer whose eos is missing or equal to bos, and a vllm.max_model_len that
cannot hold the longest prompt plus the completion."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import prepared

from axolotl_grpo_plugin.check import files, hardware, prepare
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.system.launch import Launch


GPU1 = Launch(processes=1, has_gpu=True)
SAMPLE = "axolotl_grpo_plugin/data/gsm8k_sample.jsonl"


def config(base_model, **extra):
    cfg = {
        "base_model": str(base_model), "rl": "grpo",
        "trl": {"num_generations": 4, "max_completion_length": 64, "reward_funcs": ["correctness"]},
        "datasets": [{"path": SAMPLE, "type": "gsm8k"}],
        "micro_batch_size": 4, "bf16": True,
    }
    cfg.update(extra)
    return cfg


def problems(cfg) -> list:
    try:
        prepared(cfg, GPU1)
    except GRPOConfigError as exc:
        return exc.problems
    return []


def keyed(found, key):
    return [p for p in found if p.key == key]


def tiny_folder(tmp_path: Path, eos: str | None, bos: str | None = "<s>") -> Path:
    """A model folder whose tokenizer is made here: a word-level vocabulary, eos/bos as given."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": 0, "</s>": 1, "<unk>": 2, "hello": 3}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", bos_token=bos, eos_token=eos)
    folder = tmp_path / "tiny"
    tokenizer.save_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def test_the_new_checks_run_in_register_too():
    for check in (files.check_model_folder, files.check_end_of_turn, hardware.check_context_fits):
        # prepare_config runs both lists (the library ones once the others pass), for check and train
        assert check in prepare.CHECKS + prepare.LIBRARY_CHECKS


def test_eos_equal_to_bos_is_refused_with_both_fixes(tmp_path):
    folder = tiny_folder(tmp_path, eos="<s>", bos="<s>")
    found = keyed(problems(config(folder)), "base_model")
    assert len(found) == 1 and found[0].value == str(folder)
    assert "'<s>' is also its beginning-of-sequence token" in found[0].message
    assert "axolotl-grpo fetch-model" in found[0].fix and "special_tokens" in found[0].fix


def test_no_eos_is_refused(tmp_path):
    folder = tiny_folder(tmp_path, eos=None)
    found = keyed(problems(config(folder)), "base_model")
    assert len(found) == 1 and "has no end-of-sequence token" in found[0].message


def test_special_tokens_eos_is_the_fix(tmp_path):
    folder = tiny_folder(tmp_path, eos="<s>", bos="<s>")
    assert keyed(problems(config(folder, special_tokens={"eos_token": "</s>"})), "base_model") == []


def test_a_tokenizer_config_folder_is_the_one_checked(tmp_path):
    good = tiny_folder(tmp_path / "good", eos="</s>")
    bad = tiny_folder(tmp_path / "bad", eos="<s>", bos="<s>")
    assert keyed(problems(config(good)), "base_model") == []
    found = keyed(problems(config(good, tokenizer_config=str(bad))), "tokenizer_config")
    assert len(found) == 1 and found[0].value == str(bad)


def test_a_gguf_file_as_base_model_names_the_path_and_the_fix(tmp_path):
    gguf = tmp_path / "SmolLM2-135M-Instruct.Q4_1.gguf"
    gguf.write_bytes(b"GGUF")
    found = keyed(problems(config(gguf)), "base_model")
    assert len(found) == 1 and found[0].value == str(gguf) and "GGUF file" in found[0].message
    assert "fetch-model" in found[0].fix and "gguf_file" in found[0].fix
    found = keyed(problems(config(tmp_path)), "base_model")  # the folder holding only the gguf
    assert len(found) == 1 and "SmolLM2-135M-Instruct.Q4_1.gguf (GGUF)" in found[0].message


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("not a model")
    found = keyed(problems(config(tmp_path)), "base_model")
    assert len(found) == 1 and "no config.json" in found[0].message and found[0].value == str(tmp_path)


def sft_config(base_model, **extra) -> dict:
    """A cold-start SFT config (the plugin does not train it): what `check` sees in smollm2-gsm8k-sft.yaml."""
    return {"base_model": str(base_model), "datasets": [{"path": SAMPLE, "type": "alpaca"}],
            "sequence_len": 256, "micro_batch_size": 2, "gradient_accumulation_steps": 1,
            "learning_rate": 1e-5, "output_dir": "out", **extra}


@pytest.mark.parametrize(("precision", "says"), [
    ({"bf16": True}, "transformers refuses bf16"),
    ({"bf16": "auto"}, "falls back to fp16"),
    ({"fp16": True, "bf16": False}, "half precision fails on CPU"),
    ({}, "neither bf16 nor fp16 is set"),
])
def test_an_sft_config_in_half_precision_is_refused_on_cpu(embedded_model_dir, precision, says):
    """An SFT config with bf16: true passed `check --cpu` and crashed in transformers' TrainingArguments."""
    cfg = sft_config(embedded_model_dir, **precision)
    with pytest.raises(GRPOConfigError) as refused:
        prepare.check_model(read_run(cfg), Launch(processes=1, has_gpu=False))
    (found,) = refused.value.problems
    assert says in found.message and "`bf16: false` and `fp16: false`" in found.fix
    assert prepare.check_model(read_run(cfg), GPU1)[1] == []  # on a GPU the same config is fine
    assert prepare.check_model(read_run(sft_config(embedded_model_dir, bf16=False, fp16=False)),
                              Launch(processes=1, has_gpu=False))[1] == []


def test_an_sft_config_with_deepspeed_on_cpu_is_told_to_drop_it_not_pointed_at_grpo_configs(embedded_model_dir):
    cfg = sft_config(embedded_model_dir, bf16=False, fp16=False, deepspeed="zero2.json")
    with pytest.raises(GRPOConfigError) as refused:
        prepare.check_model(read_run(cfg), Launch(processes=1, has_gpu=False))
    (found,) = refused.value.problems
    assert found.key == "deepspeed" and "remove `deepspeed`" in found.fix and "smoke.yaml" not in found.fix


def test_check_cli_names_bf16_of_an_sft_config_on_cpu(embedded_model_dir, tmp_path, capsys):
    import yaml

    from axolotl_grpo_plugin.commands import check as check

    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(sft_config(embedded_model_dir, bf16=True)))
    assert check.main([str(path), "--cpu"]) != 0
    err = capsys.readouterr().err
    assert "bf16" in err and "True" in err and "set `bf16: false`" in err


def vllm_config(model, max_model_len, completion=64):
    cfg = config(model, vllm={"max_model_len": max_model_len})
    cfg["trl"].update(use_vllm=True, vllm_mode="server", max_completion_length=completion)
    return cfg


def test_max_model_len_must_hold_the_longest_prompt_plus_the_completion(embedded_model_dir):
    from axolotl_grpo_plugin.seqstats.api import longest_prompt

    cfg = config(embedded_model_dir)
    longest = longest_prompt(cfg, read_run(cfg))
    assert longest is not None and longest > 0
    exact = longest + 64
    found = keyed(problems(vllm_config(embedded_model_dir, exact - 1)), "vllm.max_model_len")
    assert len(found) == 1 and f"longest prompt ({longest} tokens" in found[0].message
    assert f"`vllm.max_model_len: {exact}`" in found[0].fix
    assert keyed(problems(vllm_config(embedded_model_dir, exact)), "vllm.max_model_len") == []


def test_without_the_tokenizer_at_hand_the_completion_is_the_bound():
    # a Hub id is never downloaded by a check: 256 beside a 512 completion is still refused
    found = keyed(problems(vllm_config("Qwen/Qwen2.5-1.5B-Instruct", 256, completion=512)), "vllm.max_model_len")
    assert len(found) == 1 and "the completion alone" in found[0].message
    assert "`vllm.max_model_len: 513`" in found[0].fix
    assert keyed(problems(vllm_config("Qwen/Qwen2.5-1.5B-Instruct", 1024, completion=512)),
                 "vllm.max_model_len") == []


def test_the_fetched_model_passes_and_its_gguf_tokenizer_would_not(smollm2_dir, tmp_path):
    assert keyed(problems(config(smollm2_dir)), "base_model") == []
    raw = tmp_path / "as-converted"  # the tokenizer as transformers converts it from the GGUF file
    raw.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (raw / name).write_bytes((smollm2_dir / name).read_bytes())
    settings = json.loads((smollm2_dir / "tokenizer_config.json").read_text())
    settings.update(eos_token="<|im_start|>", pad_token=None)
    (raw / "tokenizer_config.json").write_text(json.dumps(settings))
    found = keyed(problems(config(raw)), "base_model")
    assert len(found) == 1 and "'<|im_start|>' is also its beginning-of-sequence token" in found[0].message


@pytest.mark.parametrize("limit", [700, 800])  # GSM8K train's longest prompt is under 288 tokens
def test_the_fetched_tokenizer_counts_the_real_gsm8k_prompts(smollm2_dir, shared_dir, limit):
    data = shared_dir / "data" / "gsm8k" / "train.jsonl"
    cfg = vllm_config(smollm2_dir, limit, completion=512)
    cfg["datasets"] = [{"path": str(data), "type": "gsm8k"}]
    found = keyed(problems(cfg), "vllm.max_model_len")
    if limit == 800:
        assert found == []
    else:  # 700 holds the completion but not the longest prompt with it: counted, not guessed
        assert len(found) == 1 and "longest prompt (" in found[0].message
