"""A LoRA run's output folder scored with vLLM (sampling/models.py): vLLM loads whole models, so the
adapter is merged into its base in a temporary folder first, which computes what the adapter does."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from axolotl_grpo_plugin.sampling import models
from axolotl_grpo_plugin.sampling.prompts import EvalError


@pytest.fixture
def adapter_dir(embedded_model_dir, tmp_path):
    """An adapter over the embedded tiny model whose delta is not zero, saved as a LoRA run saves it."""
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)  # peft starts B at zero: give the adapter a delta
    out = tmp_path / "lora-run"
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(embedded_model_dir).save_pretrained(out)
    return out


def test_a_folder_with_whole_model_weights_beside_an_adapter_config_is_a_model(tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "adapter_model.safetensors").write_bytes(b"")
    assert models.is_adapter(tmp_path)
    (tmp_path / "model-00001-of-00002.safetensors").write_bytes(b"")  # a merged or full save beside it
    assert not models.is_adapter(tmp_path)


def test_an_adapter_folder_is_merged_into_a_whole_model_that_computes_the_same(adapter_dir, embedded_model_dir):
    assert models.is_adapter(adapter_dir) and not models.is_adapter(embedded_model_dir)
    # Axolotl saves the base's config.json into a LoRA run's output_dir before training: still an adapter
    (adapter_dir / "config.json").write_text((embedded_model_dir / "config.json").read_text())
    assert models.is_adapter(adapter_dir)
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    folder = models.merged_adapter(adapter_dir, tokenizer)
    merged_dir = folder.name
    assert (adapter_dir / merged_dir.split("/")[-1]).is_dir()  # beside the adapter, not in /tmp
    ids = torch.tensor([[1, 5, 9, 12, 3]])
    with torch.no_grad():
        expected = models.load_model(str(adapter_dir), "cpu")(ids).logits
        merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)(ids).logits
        base = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)(ids).logits
    assert torch.allclose(merged, expected, atol=1e-5)
    assert not torch.allclose(merged, base, atol=1e-3)  # the adapter's delta is in it
    assert AutoTokenizer.from_pretrained(merged_dir).eos_token == tokenizer.eos_token
    folder.cleanup()
    assert not (adapter_dir / merged_dir.split("/")[-1]).exists()


def test_a_folder_that_cannot_take_the_merge_is_a_clear_error(adapter_dir, monkeypatch):
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("transformers.PreTrainedModel.save_pretrained", full_disk)
    with pytest.raises(EvalError, match="free disk space .* or score with --backend transformers"):
        models.merged_adapter(adapter_dir, AutoTokenizer.from_pretrained(adapter_dir))
    assert not [p for p in adapter_dir.iterdir() if p.name.startswith(".merged-for-vllm-")]  # nothing left
