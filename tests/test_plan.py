"""Memory planner: arithmetic against hand-computed cases, shapes against real
architectures (built on the meta device, nothing downloaded), and CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from axolotl_grpo_plugin.commands.plan import main as plan_main
from axolotl_grpo_plugin.plan import (
    KNOWN_MODELS,
    ModelDims,
    UnknownGPU,
    UnknownModel,
    Workload,
    estimate_trainer,
    estimate_vllm,
    find_gpu,
    gpu_from_memory,
    levers,
    parse_dims,
    resolve_dims,
)
from axolotl_grpo_plugin.plan.dims import dims_from_hf_config
from axolotl_grpo_plugin.plan.estimate import lora_params, resident_items, step_items


GIB = 1024**3
REPO = Path(__file__).resolve().parents[1]

# A round-number model so every figure below can be checked with pen and paper:
# head_dim 100, q 1000, kv 200. Per layer: q 1e6 + k 2e5 + v 2e5 + o 1e6 + gate/up/down 3 x 3e6
# = 11_400_000 linear weights + 2_000 norm weights. 10 layers + embedding 5e6 (tied) + final norm 1e3.
TOY = ModelDims(hidden=1000, layers=10, vocab=5000, intermediate=3000, heads=10, kv_heads=2, tied=True)
P = 119_021_000
# One micro-batch: 2 sequences x (100 prompt + 200 completion) = 600 tokens.
STEP = dict(micro_batch_size=2, gradient_accumulation_steps=4, prompt_tokens=100, completion_tokens=200)
CHECKPOINTS = 10 * 600 * 1000 * 2  # layers x tokens x hidden x bf16
ONE_LAYER = 600 * (4 * 1000 + 2 * 1000 + 2 * 200 + 4 * 3000) * 2  # tokens x (4H+2q+2kv+4I) x bf16
# 4 fp32 copies x mbs x completion x vocab: bf16 runs return fp32 logits (accelerate's mixed precision)
LOGITS = 4 * 2 * 200 * 5000 * 4
STEP_BYTES = CHECKPOINTS + ONE_LAYER + LOGITS  # 12_000_000 + 22_080_000 + 32_000_000
BIG = gpu_from_memory(1000)


def total(items) -> float:
    return sum(i.bytes for i in items)


def test_toy_parameter_count():
    assert TOY.total_params() == P
    assert TOY.kv_bytes_per_token() == 2 * 10 * 200 * 2


def test_full_finetune_single_process():
    w = Workload(dims=TOY, method="full", sharding="none", processes=1, **STEP)
    # bf16 weights + bf16 grads + two bf16 Adam moments = 8 bytes per parameter
    assert total(resident_items(w)) == 8 * P
    assert total(step_items(w)) == STEP_BYTES == 66_080_000
    est = estimate_trainer(w, BIG)
    assert est.peak == 8 * P + STEP_BYTES + GIB
    # Axolotl's start-up second copy: 2 x bf16 weights at load
    assert est.load_peak == 4 * P + GIB


def test_full_finetune_ddp_adds_buckets_and_beta_adds_reference_model():
    w = Workload(dims=TOY, method="full", processes=2, **STEP)
    assert total(resident_items(w)) == 10 * P  # + bf16 all-reduce buckets
    with_ref = replace(w, beta=0.04)
    assert total(resident_items(with_ref)) == 12 * P  # + a bf16 reference model


def test_zero3_shards_sixteen_bytes_per_parameter():
    w = Workload(dims=TOY, method="full", sharding="zero3", processes=4, **STEP)
    gathered = 2 * 11_402_000 * 2  # two layers of bf16 weights (bigger than the 5e6 embedding)
    assert total(resident_items(w)) == 16 * P / 4 + gathered
    assert estimate_trainer(w, BIG).peak == 16 * P / 4 + gathered + STEP_BYTES + GIB


def test_zero1_and_zero2_shard_less():
    w1 = Workload(dims=TOY, sharding="zero1", processes=4, **STEP)
    w2 = replace(w1, sharding="zero2")
    assert total(resident_items(w1)) == 2 * P + 2 * P + 12 * P / 4
    assert total(resident_items(w2)) == 2 * P + (2 + 12) * P / 4


def test_lora():
    w = Workload(dims=TOY, method="lora", lora_r=8, **STEP)
    # r x (in + out) per linear: q 2000, k 1200, v 1200, o 2000, gate/up/down 4000 each = 18_400
    adapter = 10 * 8 * 18_400
    assert lora_params(TOY, 8, w.lora_targets) == adapter == 1_472_000
    assert total(resident_items(w)) == 2 * P + 16 * adapter  # frozen bf16 base + fp32 w/g/Adam
    est = estimate_trainer(w, BIG)
    assert est.peak == 2 * P + 16 * adapter + STEP_BYTES + GIB
    assert est.load_peak == 2 * P + GIB  # no second copy for adapters
    assert total(resident_items(replace(w, beta=0.04))) == total(resident_items(w))  # adapter off = reference


def test_qlora():
    w = Workload(dims=TOY, method="qlora", lora_r=8, **STEP)
    nf4 = 0.5 + 0.015625 + 0.000244140625  # 4 bits + 8-bit absmax / 64 + fp32 / (64 x 256)
    base = 114_000_000 * nf4 + (P - 114_000_000) * 2  # linears in 4 bits; embedding and norms bf16
    assert total(resident_items(w)) == pytest.approx(base + 16 * 1_472_000)
    assert base == pytest.approx(68_851_082.03125)


def test_no_checkpointing_keeps_every_layer():
    w = Workload(dims=TOY, gradient_checkpointing=False, **STEP)
    assert total(step_items(w)) == 10 * ONE_LAYER + LOGITS


def test_transformers_generation_adds_kv_cache():
    w = Workload(dims=TOY, use_vllm=False, **STEP)
    kv = 8 * 300 * 8000  # this process's 2 x 4 sequences x 300 tokens x KV bytes per token
    assert total(estimate_trainer(w, BIG).generation) == kv
    assert estimate_trainer(w, BIG).peak == 8 * P + max(STEP_BYTES, kv) + GIB


def test_colocated_vllm_adds_its_share_unless_asleep():
    gpu = gpu_from_memory(80)
    w = Workload(dims=TOY, vllm_mode="colocate", vllm_gpu_memory_utilization=0.25, **STEP)
    share = 0.25 * 80 * GIB
    assert estimate_trainer(w, gpu).peak == 8 * P + STEP_BYTES + share + GIB
    asleep = estimate_trainer(replace(w, vllm_sleep_mode=True), gpu)
    assert asleep.peak == max(8 * P + STEP_BYTES, 8 * P + share) + GIB


def test_vllm_server_kv_cache():
    gpu = gpu_from_memory(40)
    w = Workload(dims=TOY, vllm_gpu_memory_utilization=0.5, **STEP)
    v = estimate_vllm(w, gpu)
    assert v.kv_needed == 8 * 300 * 8000  # generation batch 2 x 4 x 1 sequences x 300 tokens
    assert v.kv_capacity == 0.5 * 40 * GIB - 2 * P - 2 * GIB
    assert v.concurrent_sequences == int(v.kv_capacity // (300 * 8000))


def test_levers_rank_by_saving_and_lora_beats_full():
    w = Workload(dims=KNOWN_MODELS["Qwen/Qwen2.5-7B-Instruct"], micro_batch_size=16,
                 gradient_accumulation_steps=4, prompt_tokens=263, completion_tokens=512)
    gpu = find_gpu("A100-40GB")
    ranked = levers(w, gpu)
    peaks = [peak for _, peak in ranked]
    assert peaks == sorted(peaks)
    assert all(peak < estimate_trainer(w, gpu).peak for peak in peaks)
    assert "LoRA" in ranked[0][0]


@pytest.mark.parametrize("release", ["1.9", "1.13", "1.14"])
def test_a_config_without_the_keys_gets_the_installed_trl_defaults(monkeypatch, release):
    """Issue 27: the plan used 256 for an unset `trl.max_completion_length` whatever the
    release, so on Axolotl 0.21 (TRL 1.14, default 512) it planned half the completion."""
    from axolotl_grpo_plugin.config import defaults
    from axolotl_grpo_plugin.config.run import read_run
    from axolotl_grpo_plugin.plan.from_config import workload_from_config

    (row,) = [r for r in defaults._TRL_ROWS.values() if r.read_from == release]
    monkeypatch.setattr(defaults, "MAX_COMPLETION_LENGTH", row.max_completion_length)
    monkeypatch.setattr(defaults, "NUM_GENERATIONS", row.num_generations)
    w = workload_from_config(read_run({"rl": "grpo", "trl": {"use_vllm": True}}), TOY, processes=1)
    assert (w.completion_tokens, w.num_generations) == (row.max_completion_length, row.num_generations)
    set_keys = {"trl": {"max_completion_length": 300, "num_generations": 4}}
    assert workload_from_config(read_run(set_keys), TOY, processes=1).completion_tokens == 300


@pytest.mark.parametrize("name", ["Qwen/Qwen2.5-1.5B-Instruct", "Qwen/Qwen2.5-7B-Instruct",
                                  "meta-llama/Llama-3.2-1B-Instruct", "meta-llama/Llama-3.1-8B-Instruct",
                                  "HuggingFaceTB/SmolLM2-135M-Instruct"])
def test_table_dims_match_the_real_architecture(name):
    """Build the real model class on the meta device from the table's dims; count parameters."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    d = KNOWN_MODELS[name]
    kwargs = dict(hidden_size=d.hidden, num_hidden_layers=d.layers, vocab_size=d.vocab,
                  intermediate_size=d.intermediate, num_attention_heads=d.heads,
                  num_key_value_heads=d.kv_heads, tie_word_embeddings=d.tied)
    if name.startswith("Qwen"):
        config, cls = Qwen2Config(**kwargs), Qwen2ForCausalLM
    else:
        config, cls = LlamaConfig(head_dim=d.head_dim, **kwargs), LlamaForCausalLM
    with torch.device("meta"):
        model = cls(config)
    assert d.total_params() == sum(p.numel() for p in model.parameters())


def test_local_config_json_gives_exact_count(embedded_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    dims, source = resolve_dims(str(embedded_model_dir))
    assert source.endswith("config.json")
    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    assert dims.total_params() == sum(p.numel() for p in model.parameters())


def test_explicit_dims_and_errors():
    d = parse_dims("hidden=1000,layers=10,vocab=5000,intermediate=3000,heads=10,kv_heads=2,tied=1")
    assert d == TOY
    with pytest.raises(ValueError, match="missing intermediate"):
        parse_dims("hidden=1000,layers=10,vocab=5000,heads=10")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_dims("hidden=1000,width=3")
    with pytest.raises(UnknownModel, match="--dims"):
        resolve_dims("some-org/unknown-model-13B")
    assert resolve_dims("some-org/unknown-model-13B", explicit="hidden=8,layers=1,vocab=8,intermediate=8,heads=2")[1] == "--dims"
    with pytest.raises(UnknownGPU, match="--gpu-memory"):
        find_gpu("B300")
    assert find_gpu("h100").name == find_gpu("H100-80GB").name == "H100"


def test_dims_from_hf_config_reads_llama_and_qwen_keys():
    d = dims_from_hf_config({"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100,
                             "intermediate_size": 128, "num_attention_heads": 4, "model_type": "llama"})
    assert (d.kv_heads, d.head_dim, d.qkv_bias, d.tied) == (4, 16, False, False)
    with pytest.raises(UnknownModel, match="--dims"):
        dims_from_hf_config({"hidden_size": 64})
    for wrong in (None, "abc", 0):  # a local config.json's bad shape: a line naming --dims, no traceback
        with pytest.raises(UnknownModel, match="not a positive number.*--dims"):
            dims_from_hf_config({"hidden_size": wrong, "num_hidden_layers": 2, "vocab_size": 100,
                                 "intermediate_size": 128, "num_attention_heads": 4})


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "axolotl_grpo_plugin.plan", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_unknown_gpu_is_one_line():
    proc = run_cli("configs/gsm8k.yaml", "--gpu-type", "B300")
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "--gpu-memory" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("dims, message", [
    ("hidden=abc", "--dims: hidden must be an integer, got 'abc'"),
    ("foo", "--dims: 'foo' is not KEY=VALUE"),
    ("hidden=8,layers=2", "--dims is missing vocab, intermediate, heads"),
    ("hidden=0,layers=1,vocab=8,intermediate=8,heads=2", "--dims: model dimension hidden must be positive, got 0"),
])
def test_cli_bad_dims_is_one_line(dims, message, capsys):
    assert plan_main(["configs/gsm8k.yaml", "--dims", dims]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1


@pytest.mark.parametrize("flag, value", [("--processes", "0"), ("--processes", "-2"),
                                         ("--prompt-tokens", "0"), ("--prompt-tokens", "-1")])
def test_cli_refuses_counts_below_one(flag, value, capsys):
    """Not planned for 1 process or 263 prompt tokens instead, as `check` refuses --processes 0."""
    with pytest.raises(SystemExit) as done:
        plan_main(["configs/gsm8k.yaml", flag, value])
    assert done.value.code == 2
    assert f"error: argument {flag}: '{value}' must be at least 1. Fix: " in capsys.readouterr().err


@pytest.mark.parametrize("gib", ["nan", "inf", "0"])
def test_cli_refuses_a_gpu_memory_no_card_has(gib, capsys):
    assert plan_main(["configs/gsm8k.yaml", "--gpu-memory", gib]) == 2
    assert capsys.readouterr().err == f"error: --gpu-memory must be a positive number of GiB, got {float(gib)}\n"


def test_cli_base_model_that_is_not_a_string_names_the_key(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text((REPO / "configs/gsm8k.yaml").read_text().replace(
        "base_model: Qwen/Qwen2.5-1.5B-Instruct", "base_model: 5"))
    assert plan_main([str(config)]) == 2
    err = capsys.readouterr().err
    assert "base_model = 5" in err and "must be a string" in err and "Hub model id or a local model folder" in err


def test_cli_plans_the_smollm2_configs_offline(capsys):
    """The model `axolotl-grpo fetch-model smollm2-135m` writes is in the table: 134,515,008
    parameters, as the fetched folder's config.json and weights count them."""
    assert plan_main(["configs/smollm2-gsm8k-grpo-cpu.yaml", "--gpu-type", "L4"]) == 0
    out = capsys.readouterr().out
    assert "HuggingFaceTB/SmolLM2-135M-Instruct: 134.5M params (dims: built-in table" in out
    assert KNOWN_MODELS["HuggingFaceTB/SmolLM2-135M-Instruct"].total_params() == 134_515_008


def test_cli_unknown_model_names_dims_and_accepts_them(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text((REPO / "configs/gsm8k.yaml").read_text().replace(
        "Qwen/Qwen2.5-1.5B-Instruct", "example-org/not-on-this-machine"))
    assert plan_main([str(config), "--gpu-type", "L40S"]) == 2
    proc = run_cli(str(config), "--gpu-type", "L40S")
    assert "--dims" in proc.stderr and "not-on-this-machine" in proc.stderr
    dims = "hidden=1536,layers=28,vocab=151936,intermediate=8960,heads=12,kv_heads=2,tied=1"
    explicit = run_cli(str(config), "--gpu-type", "L40S", "--dims", dims, "--json")
    reference = run_cli("configs/gsm8k.yaml", "--gpu-type", "L40S", "--json")
    assert explicit.returncode == 0, explicit.stderr
    a, b = json.loads(explicit.stdout), json.loads(reference.stdout)
    # same shapes except Qwen's q/k/v biases (not given above): a few hundred thousand params
    assert abs(a["params"] - b["params"]) < 1e6


def test_cli_reads_prompt_budget_from_stats_json(tmp_path, capsys):
    stats = tmp_path / "stats.json"
    stats.write_text(json.dumps({"rows": 3, "prompt_tokens": {"max": 400}}))
    assert plan_main(["configs/gsm8k.yaml", "--gpu-type", "H100", "--stats", str(stats), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt_tokens"] == 400
    stats.write_text("{}")
    assert plan_main(["configs/gsm8k.yaml", "--stats", str(stats)]) == 2
    assert "prompt_tokens.max" in capsys.readouterr().err


REFERENCE_PROBE = '''
import gc, json, sys, weakref
import axolotl.loaders.model as loader
import axolotl.train as train

loads, refs = [], []
original_load, original_ref, original_exec = (
    loader.ModelLoader.load, train.setup_reference_model, train.execute_training)

def load(self, *args, **kwargs):
    loads.append(bool(self.reference_model))
    return original_load(self, *args, **kwargs)

def setup_reference_model(*args, **kwargs):
    ref = original_ref(*args, **kwargs)
    refs.append(None if ref is None else weakref.ref(ref))
    return ref

def execute_training(cfg, trainer, *args, **kwargs):
    gc.collect()
    print("PROBE " + json.dumps({"loads": len(loads),
        "kept": [r() is not None for r in refs if r], "trainer_ref": trainer.ref_model is not None}))
    sys.stdout.flush()
    raise SystemExit(0)

loader.ModelLoader.load = load
train.setup_reference_model = setup_reference_model
train.execute_training = execute_training

if __name__ == "__main__":
    from axolotl.cli.train import do_cli
    do_cli(config=sys.argv[1])
'''


@pytest.mark.slow
@pytest.mark.integration
def test_axolotl_loads_a_second_copy_and_drops_it_before_training(tmp_path, embedded_model_dir):
    """The planner's `at load` term: Axolotl 0.19 loads the model twice for a GRPO full
    fine-tune with beta 0, passes neither copy to TRL as a reference, and frees the second
    before training. If an Axolotl upgrade changes this, the planner must change too."""
    import yaml
    from conftest import subprocess_env

    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"),
               dataset_prepared_path=str(tmp_path / "prepared"), dataset_num_proc=1, max_steps=1)
    cfg["datasets"][0]["path"] = str(REPO / cfg["datasets"][0]["path"])
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump(cfg))
    probe = tmp_path / "probe.py"
    probe.write_text(REFERENCE_PROBE)
    proc = subprocess.run([sys.executable, str(probe), str(config)], cwd=tmp_path, env=subprocess_env(),
                          capture_output=True, text=True, timeout=900)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("PROBE ")), None)
    assert line, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert json.loads(line[len("PROBE "):]) == {"loads": 2, "kept": [False], "trainer_ref": False}


def test_from_data_uses_the_stats_module(embedded_model_dir, capsys):
    from axolotl_grpo_plugin.seqstats import prompt_token_stats

    measured = prompt_token_stats(REPO / "configs" / "smoke.yaml", progress=False).prompt_tokens["max"]
    assert plan_main(["configs/smoke.yaml", "--from-data", "--gpu-memory", "8", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt_tokens"] == measured


@pytest.mark.parametrize(("model", "said"), [
    ("empty", "cannot load a tokenizer"),
    ("missing", "no such directory"),
])
def test_from_data_names_a_tokenizer_fix_plan_has(model, said, tmp_path, capsys):
    """The fix said `pass --tokenizer DIR`, a flag plan does not have."""
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["base_model"] = str(tmp_path / model)
    (tmp_path / "empty").mkdir()
    config = tmp_path / "smoke.yaml"
    config.write_text(yaml.safe_dump(cfg))
    dims = "hidden=64,layers=2,vocab=1000,intermediate=128,heads=4,kv_heads=2"
    assert plan_main([str(config), "--from-data", "--dims", dims, "--gpu-memory", "8"]) == 2
    err = capsys.readouterr().err
    assert said in err and "--tokenizer" not in err and "set `base_model:` in the config" in err


def test_default_prompt_budget_is_the_real_gsm8k_maximum(shared_dir, tmp_path, capsys):
    """The documented default (263) is what the stats module measures on the real GSM8K
    train split with the real Qwen2.5 tokenizer and template."""
    import yaml

    from axolotl_grpo_plugin.plan.from_config import DEFAULT_PROMPT_TOKENS

    cfg = yaml.safe_load((REPO / "configs" / "gsm8k.yaml").read_text())
    cfg["tokenizer_config"] = str(shared_dir / "tokenizers" / "qwen2.5-instruct")
    cfg["datasets"] = [{"path": str(shared_dir / "data" / "gsm8k" / "train.jsonl"), "type": "gsm8k"}]
    config = tmp_path / "gsm8k-local.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert plan_main([str(config), "--from-data", "--gpu-type", "L40S", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["prompt_tokens"] == DEFAULT_PROMPT_TOKENS


def test_an_sft_config_is_refused_in_one_line_not_planned_as_grpo():
    result = run_cli("configs/smollm2-gsm8k-sft.yaml")
    assert result.returncode == 2 and "not a GRPO config" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""


def test_plan_reads_the_config_file_once(monkeypatch, capsys):
    """The yaml and its `# Processes: 7` comment come from one read of the file."""
    config = Path("configs/gsm8k-8gpu-zero3.yaml").resolve()
    reads, real = [], Path.read_text

    def read_text(self, *args, **kwargs):
        reads.append(self.resolve() == config)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert plan_main([str(config), "--gpu-type", "H100", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["processes"] == 7
    assert reads.count(True) == 1
