"""cloud.yaml's image resolves: pip's resolver, for the container's Python (3.12), agrees on the
pinned Axolotl, vLLM and torch plus the plugin's own requirements (`pip install --dry-run
--report`: metadata only, nothing installed). Skips without a Python 3.12 or the registry."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib

import pytest
import yaml
from conftest import REPO_ROOT


def _python312() -> str:
    python = os.environ.get("PYTHON312") or shutil.which("python3.12")
    if not python or subprocess.run([python, "-m", "pip", "--version"], capture_output=True).returncode:
        pytest.skip("no Python 3.12 with pip here (the container's Python); set PYTHON312")
    return python


def _image_requirements() -> list[str]:
    """The image's `pip install` line, the plugin replaced by its own requirements and extra."""
    steps = yaml.safe_load((REPO_ROOT / "cloud.yaml").read_text())["dockerfile_commands"]
    [install] = [s for s in steps if s.startswith("RUN pip install")]
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    out = []
    for word in shlex.split(install)[3:]:
        if word.startswith("-"):
            continue
        if word.startswith("/opt/axolotl-grpo-plugin"):
            out += project["dependencies"] + project["optional-dependencies"]["vllm"]
        else:
            out.append(word)
    return out


@pytest.mark.slow
def test_the_images_pins_resolve_for_python_312(tmp_path):
    python = _python312()
    reachable = subprocess.run([python, "-m", "pip", "index", "versions", "axolotl"],
                               capture_output=True, text=True, timeout=120)
    if reachable.returncode:
        pytest.skip(f"the package registry cannot be asked: {reachable.stderr.strip()[-200:]}")
    requirements = _image_requirements()
    pins = {re.sub(r"\[.*\]", "", name): pin for name, _, pin in (r.partition("==") for r in requirements) if pin}
    assert set(pins) == {"axolotl", "vllm"}, requirements
    report = tmp_path / "report.json"
    proc = subprocess.run([python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                           "--report", str(report), *requirements],
                          capture_output=True, text=True, timeout=1500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert chosen["axolotl"] == pins["axolotl"] and chosen["vllm"] == pins["vllm"]
    assert "torch" in chosen and "math-verify" in chosen
