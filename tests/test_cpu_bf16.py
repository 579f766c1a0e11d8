"""`grpo_plugin.cpu_bf16` (training/cpu_bf16.py): bfloat16 autocast over float32 weights on a run without a GPU.
The unit tests hold what the plugin asks for and says; the integration test holds that a real
`axolotl train` then computes in bfloat16 while its weights, gradients and saved model stay float32."""

from __future__ import annotations

import copy
import json
import os
from types import SimpleNamespace

import pytest
import torch
import yaml
from conftest import prepared

from axolotl_grpo_plugin.check.hardware import precision_warnings
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.plugin import GRPOPlugin
from axolotl_grpo_plugin.system import launch
from axolotl_grpo_plugin.system.launch import Launch
from axolotl_grpo_plugin.training import cpu_bf16


CPU = Launch(processes=1, has_gpu=False)
TRL_IS_MODE = "sequence_mask"  # GRPOConfig's default in TRL 1.9 and 1.14
GPU = Launch(processes=1, has_gpu=True)
EPYC = "processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 avx512_vnni\n"
OLDER = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n"
SAPPHIRE = "flags\t\t: avx512f amx_bf16 amx_tile\n"


@pytest.mark.parametrize(("cpuinfo", "units"), [(EPYC, "avx512_bf16"), (SAPPHIRE, "amx_bf16"), (OLDER, None),
                                                ("", None), ("flags: avx512_bf16_x\n", None)])
def test_bf16_units_are_read_from_the_flags_line(cpuinfo, units):
    assert cpu_bf16.bf16_units(cpuinfo) == units


def test_this_cpus_flags_are_read_once_a_process(monkeypatch):
    reads = []

    class CpuInfo:
        def __init__(self, path):
            assert path == "/proc/cpuinfo"

        def read_text(self):
            reads.append(1)
            return EPYC

    monkeypatch.setattr(cpu_bf16, "Path", CpuInfo)
    cpu_bf16._this_cpus_units.cache_clear()
    try:
        assert [cpu_bf16.bf16_units() for _ in range(4)] == ["avx512_bf16"] * 4
        assert len(reads) == 1
        assert cpu_bf16.bf16_units(OLDER) is None  # a given text is read, not the cached answer
    finally:
        cpu_bf16._this_cpus_units.cache_clear()


def test_the_trainer_is_asked_for_mixed_precision_only_on_a_cpu_run_that_wants_it():
    mixed = {"bf16": True, "use_cpu": True, "vllm_importance_sampling_mode": "token_truncate"}
    assert cpu_bf16.training_args(True, False, "avx512_bf16", "token_truncate") == mixed
    assert cpu_bf16.training_args(True, False, None, "token_truncate") == mixed  # asked for: emulated, and warned
    assert cpu_bf16.training_args("auto", False, "amx_bf16", "token_truncate") == mixed
    assert cpu_bf16.training_args("auto", False, None, "token_truncate") == {}  # auto: only where the units are
    assert cpu_bf16.training_args(True, True, "avx512_bf16", "token_truncate") == {}  # a GPU run: Axolotl's `bf16:`
    assert cpu_bf16.training_args(False, False, "avx512_bf16", "token_truncate") == {}
    assert cpu_bf16.training_args(True, False, "avx512_bf16", None) == {"bf16": True, "use_cpu": True}


@pytest.mark.parametrize("use_vllm, configured, asked", [
    (True, None, "token_truncate"),
    (True, "sequence_mask", None),  # the user's own importance sampling is theirs: Axolotl passes it
    (False, None, None),  # no vLLM: TRL corrects nothing, so nothing is asked for (or said)
])
def test_per_token_sampling_is_asked_for_only_where_trl_would_apply_it(monkeypatch, use_vllm, configured, asked):
    assert cpu_bf16.sampling_mode(use_vllm, configured) == asked
    monkeypatch.setattr(cpu_bf16, "bf16_units", lambda: "avx512_bf16")
    monkeypatch.setattr(launch, "cuda_gpu_count", lambda: 0)
    cfg = _config(cpu_bf16=True)
    cfg["trl"].update(use_vllm=use_vllm, **({"vllm_importance_sampling_mode": configured} if configured else {}))
    args = GRPOPlugin().get_training_args(cfg)  # what the trainer is built with
    assert args["bf16"] is True and args.get("vllm_importance_sampling_mode") == asked, args
    line = cpu_bf16.line(True, "avx512_bf16", asked)
    assert ("importance sampling per token" in line) is (asked is not None), line


def test_the_line_says_what_the_run_computes_in_and_how_to_change_it():
    assert cpu_bf16.line(True, "avx512_bf16", None).startswith(
        "precision: bfloat16 autocast over float32 weights and optimizer, float32 logits (on this CPU's avx512_bf16")
    assert cpu_bf16.line("auto", "avx512_bf16", "token_truncate").endswith(
        "grpo_plugin.cpu_bf16: auto; importance sampling per token, trl.vllm_importance_sampling_mode: token_truncate)")
    assert cpu_bf16.line("auto", "avx512_bf16", None).endswith("grpo_plugin.cpu_bf16: auto)")
    assert "slower" in cpu_bf16.line(True, None, None)
    off = cpu_bf16.line("auto", None, "token_truncate")
    assert "no bfloat16 units" in off and off.startswith("precision: float32") and "importance" not in off
    assert cpu_bf16.line(False, "amx_bf16", None) == cpu_bf16.line(False, None, None) == "precision: float32"


def test_the_runs_own_importance_sampling_mode_is_read_as_written():
    assert read_run(_config()).trl.vllm_importance_sampling_mode is None
    cfg = _config(cpu_bf16=True)
    cfg["trl"]["vllm_importance_sampling_mode"] = "sequence_mask"
    assert read_run(cfg).trl.vllm_importance_sampling_mode == "sequence_mask"
    cfg["trl"]["vllm_importance_sampling_mode"] = 3
    with pytest.raises(GRPOConfigError) as err:
        read_run(cfg)
    assert [p.key for p in err.value.problems] == ["trl.vllm_importance_sampling_mode"]


def _config(**plugin):
    return {"rl": "grpo", "base_model": "Qwen/Qwen2.5-1.5B-Instruct", "bf16": False, "fp16": False,
            "trl": {"num_generations": 4, "max_completion_length": 64, "reward_funcs": ["correctness"]},
            "datasets": [{"path": "openai/gsm8k", "name": "main", "type": "gsm8k"}], "micro_batch_size": 4,
            "grpo_plugin": plugin}


def test_a_wrong_value_names_the_key():
    with pytest.raises(GRPOConfigError) as err:
        read_run(_config(cpu_bf16="yes please"))
    assert [p.key for p in err.value.problems] == ["grpo_plugin.cpu_bf16"]


def test_it_warns_where_it_does_nothing_or_costs(monkeypatch):
    monkeypatch.setattr(cpu_bf16, "bf16_units", lambda: None)
    assert precision_warnings(read_run(_config(cpu_bf16="auto")), CPU) == []  # auto turns itself off
    assert precision_warnings(read_run(_config(cpu_bf16="auto")), GPU) == []
    [gpu] = precision_warnings(read_run(_config(cpu_bf16=True)), GPU)
    assert "does nothing on this GPU run" in gpu and "bf16: true" in gpu
    [slow] = precision_warnings(read_run(_config(cpu_bf16=True)), CPU)
    assert "slower than float32" in slow and "avx512_bf16" in slow
    monkeypatch.setattr(cpu_bf16, "bf16_units", lambda: "avx512_bf16")
    assert precision_warnings(read_run(_config(cpu_bf16=True)), CPU) == []
    assert precision_warnings(read_run(_config()), GPU) == []


def test_bf16_on_a_cpu_run_points_at_the_key():
    cfg = _config()
    cfg["bf16"] = True
    with pytest.raises(GRPOConfigError) as err:
        prepared(cfg, CPU)
    [problem] = err.value.problems
    assert problem.key == "bf16" and "grpo_plugin.cpu_bf16: true" in problem.fix


def _trainer(model, mixed_precision="bf16", device="cpu"):
    return SimpleNamespace(model=model, accelerator=SimpleNamespace(mixed_precision=mixed_precision),
                           args=SimpleNamespace(device=torch.device(device)))


def test_the_logits_stay_float32_under_cpu_autocast(embedded_model_dir):
    """The output layer runs in float32 inside the trainer's bfloat16 autocast: the logits are the
    float32 product of the (autocast) hidden states, not their bfloat16 rounding; the layers before
    it stay bfloat16."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(embedded_model_dir, dtype=torch.float32)
    ids = torch.randint(0, model.config.vocab_size, (2, 24), generator=torch.Generator().manual_seed(0))
    seen = {}
    model.model.layers[0].mlp.down_proj.register_forward_hook(lambda m, i, o: seen.update(inner=o.dtype))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        rounded = model(ids).logits
        assert cpu_bf16.float32_logits(_trainer(model))
        kept = model(ids, output_hidden_states=True)
    with torch.no_grad():
        exact = torch.nn.functional.linear(kept.hidden_states[-1].float(), model.get_output_embeddings().weight)
    assert rounded.dtype == torch.bfloat16 and kept.logits.dtype == torch.float32 and seen["inner"] == torch.bfloat16
    assert torch.allclose(kept.logits, exact, rtol=0, atol=1e-5)
    assert not torch.allclose(rounded.float(), exact, rtol=0, atol=1e-5)  # what plain autocast gives
    twin = copy.deepcopy(model)  # computes with its own weights, not the original's
    with torch.no_grad():
        twin.get_output_embeddings().weight.mul_(2)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            doubled = twin(ids, output_hidden_states=True)
        assert doubled.logits.dtype == torch.float32
        assert torch.allclose(doubled.logits, torch.nn.functional.linear(
            doubled.hidden_states[-1].float(), twin.get_output_embeddings().weight), rtol=0, atol=1e-5)
    assert not cpu_bf16.float32_logits(_trainer(model, mixed_precision="no"))  # float32 already
    assert not cpu_bf16.float32_logits(_trainer(model, device="cuda"))  # a GPU's bf16 is Axolotl's


PROBE_PLUGIN = '''
"""Test-only: what precision the GRPO trainer trains in (printed as one JSON line)."""
import json

import torch
from axolotl.integrations.base import BasePlugin
from transformers import TrainerCallback


class Probe(TrainerCallback):
    def __init__(self, trainer):
        self.trainer, self.seen = trainer, {}
        head = trainer.model.get_output_embeddings()
        inner = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
        head.register_forward_hook(self.output("lm_head_out"))
        inner.register_forward_hook(self.output("inner_linear_out"))

    def output(self, name):
        def first_output(module, inputs, output):  # returns None: the output is left as it is
            self.seen.setdefault(name, str(output.dtype))
        return first_output

    def on_pre_optimizer_step(self, args, state, control, **kwargs):  # the gradients are gone at step end
        self.seen["grads"] = sorted({str(p.grad.dtype) for p in self.trainer.model.parameters() if p.grad is not None})

    def on_step_end(self, args, state, control, **kwargs):
        model = self.trainer.model
        moments = {str(v.dtype) for s in self.trainer.optimizer.state.values() for v in s.values()
                   if torch.is_tensor(v) and v.dim() > 0}
        print("PRECISION " + json.dumps({"args_bf16": args.bf16, "mixed": self.trainer.accelerator.mixed_precision,
              "is_mode": args.vllm_importance_sampling_mode,
              "weights": sorted({str(p.dtype) for p in model.parameters()}),
              "moments": sorted(moments), **self.seen}), flush=True)


class ProbePlugin(BasePlugin):
    def add_callbacks_post_trainer(self, cfg, trainer):
        return [Probe(trainer)]
'''


@pytest.mark.integration
@pytest.mark.parametrize("wanted", [True, False])
def test_a_cpu_run_computes_in_bf16_over_float32_weights(repo_root, embedded_model_dir, tmp_path, wanted):
    """A real `axolotl train` of the smoke config for 2 steps: with the key, the decoder's layers
    compute in bfloat16 and the logits in float32, while weights, gradients, AdamW moments and the
    saved model stay float32; without it, everything is float32 (the probe would see bfloat16 if
    autocast leaked)."""
    from conftest import run_axolotl_train

    from axolotl_grpo_plugin.config.load import read_yaml

    (tmp_path / "precision_probe.py").write_text(PROBE_PLUGIN)
    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["plugins"].append("precision_probe.ProbePlugin")
    cfg["grpo_plugin"] = {"cpu_bf16": wanted, "rollout_log": False}
    out = tmp_path / "out"
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(out), max_steps=2,
               dataset_prepared_path=str(tmp_path / "prepared"))
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, logged = run_axolotl_train(config, cwd=tmp_path, PYTHONPATH=os.pathsep.join([str(repo_root), str(tmp_path)]))
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    seen = [json.loads(line.split("PRECISION ", 1)[1]) for line in output.splitlines() if "PRECISION {" in line]
    assert len(seen) == 2 and len(logged) == 2, output[-3000:]
    fp32 = ["torch.float32"]
    for step in seen:
        assert (step["weights"], step["grads"], step["moments"]) == (fp32, fp32, fp32), step
        assert step["inner_linear_out"] == ("torch.bfloat16" if wanted else "torch.float32"), step
        assert step["lm_head_out"] == "torch.float32", step  # the logits: float32 under autocast too
        assert step["args_bf16"] is wanted and step["mixed"] == ("bf16" if wanted else "no"), step
        assert step["is_mode"] == TRL_IS_MODE, step  # no vLLM in the smoke config: nothing to correct
    said = [line for line in output.splitlines() if "precision: " in line and "grpo_plugin.plugin" in line]
    assert len(said) == 1 and ("bfloat16 autocast" in said[0]) is wanted, said or output[-3000:]
    saved = json.loads((out / "config.json").read_text())
    assert saved.get("dtype", saved.get("torch_dtype")) == "float32", saved


def test_the_sampling_mode_is_worked_out_once_a_run(repo_root, embedded_model_dir, tmp_path, monkeypatch, caplog):
    """register works it out for its precision line; the trainer's arguments take the same one."""
    from axolotl_grpo_plugin.config.load import read_yaml
    from axolotl_grpo_plugin.training import run_lock, threads
    from axolotl_grpo_plugin.vllm import autostart

    calls, real = [], cpu_bf16.sampling_mode
    monkeypatch.setattr(cpu_bf16, "sampling_mode", lambda *a: calls.append(a) or real(*a))
    monkeypatch.setattr(cpu_bf16, "bf16_units", lambda: "avx512_bf16")
    monkeypatch.setattr(launch, "cuda_gpu_count", lambda: 0)
    monkeypatch.setattr(autostart, "is_training_process", lambda *a, **k: True)  # rank 0 of a CPU `axolotl train`
    monkeypatch.setattr(threads, "configure", lambda log: None)
    monkeypatch.setattr(run_lock, "hold", lambda output_dir: None)
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"),
               grpo_plugin={"cpu_bf16": True}, axolotl_config_path=str(repo_root / "configs" / "smoke.yaml"))
    plugin = GRPOPlugin()
    with caplog.at_level("INFO", logger="axolotl_grpo_plugin.plugin"):
        plugin.register(cfg)
    assert any("precision: bfloat16 autocast" in r.getMessage() for r in caplog.records), caplog.text
    assert plugin.get_training_args(cfg)["bf16"] is True
    assert calls == [(False, None)]  # the smoke config generates without vLLM
