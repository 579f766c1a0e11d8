"""cloud.yaml through Axolotl's own Modal runner (0.19, and 0.21's `provider: modal` from its cloud
provider registry), offline: the Modal objects are
replaced by recorders and `app.run` by a no-op, so nothing is sent to Modal. Checks the
function spec (GPU type and count, secrets, volumes, image steps) and the command the
container will run, and that the image steps really install the plugin."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.config.gpus import GpuLayoutError, check_launch, split_gpus


REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.timeout(120)


class Recorder:
    """Stands in for modal.Image / App / Function and remembers every call."""

    def __init__(self, name: str, log: dict):
        self.name, self.log = name, log

    # modal.Image
    def dockerfile_commands(self, commands):
        self.log.setdefault("dockerfile_commands", []).extend(commands)
        return self

    def env(self, env):
        self.log.setdefault("image_env", {}).update(env)
        return self

    def add_local_dir(self, local, remote):
        self.log.setdefault("local_dirs", []).append((str(local), remote))
        return self

    # modal.App
    def function(self, **spec):
        self.log["function"] = spec

        def wrap(fn):
            self.log["fn"] = fn
            return Recorder("function", self.log)

        return wrap

    @contextlib.contextmanager
    def run(self, detach=False):
        self.log["app_run"] = {"detach": detach}
        yield

    # modal.Function
    def remote(self, *args, **kwargs):
        self.log["remote"] = (args, kwargs)


@pytest.fixture
def modal_launch(monkeypatch):
    """Run `axolotl train configs/gsm8k.yaml --cloud cloud.yaml -- --num_processes 1` offline."""
    modal = pytest.importorskip("modal", reason="Modal's client is not installed (Axolotl 0.21: `pip install 'axolotl[modal]'`)")
    from axolotl.cli.cloud.modal_ import ModalCloud
    from axolotl.cli.main import cli

    # the module that holds the runner: axolotl.cli.cloud.modal_ (0.19), or in 0.21
    # axolotl.integrations.modal.cloud, which the old name re-exports from
    modal_ = sys.modules[ModalCloud.__module__]
    from click.testing import CliRunner

    log: dict = {}
    monkeypatch.setattr(modal, "App", lambda *a, **k: Recorder("app", log))
    monkeypatch.setattr(modal, "enable_output", contextlib.nullcontext)
    monkeypatch.setattr(modal.Image, "from_registry",
                        staticmethod(lambda tag, **k: log.update(registry=tag) or Recorder("image", log)))
    monkeypatch.setattr(modal.Volume, "from_name", staticmethod(lambda name, **k: ("volume", name)))
    monkeypatch.setattr(modal.Secret, "from_dict", staticmethod(lambda d: ("secret", dict(d))))

    def no_docker(*a, **k):  # Axolotl asks `docker manifest inspect` for the digest
        raise subprocess.CalledProcessError(1, a[0])

    monkeypatch.setattr(modal_.subprocess, "check_output", no_docker)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    monkeypatch.setenv("WANDB_API_KEY", "wandb_test_key")
    monkeypatch.chdir(REPO)
    saved_env = dict(os.environ)
    try:
        result = CliRunner().invoke(cli, ["train", "configs/gsm8k.yaml", "--cloud", "cloud.yaml",
                                          "--", "--num_processes", "1"], catch_exceptions=False)
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
    assert result.exit_code == 0, result.output
    return log, modal_


def test_function_spec_gpus_secrets_volumes(modal_launch):
    log, _ = modal_launch
    spec = log["function"]
    assert spec["gpu"] == "H100:2"  # 1 trainer + 1 vLLM
    assert spec["volumes"] == {"/workspace/data": ("volume", "grpo-plugin-data"),
                               "/workspace/artifacts": ("volume", "grpo-plugin-artifacts")}
    assert ("secret", {"HF_TOKEN": "hf_test_token"}) in spec["secrets"]
    assert ("secret", {"WANDB_API_KEY": "wandb_test_key"}) in spec["secrets"]
    assert spec["timeout"] == 86400 and spec["memory"] == 128 * 1024
    assert log["app_run"] == {"detach": True}


def test_image_installs_the_plugin_and_vllm_and_mounts_the_checkout(modal_launch):
    log, _ = modal_launch
    steps = log["dockerfile_commands"]
    assert steps == yaml.safe_load((REPO / "cloud.yaml").read_text())["dockerfile_commands"]
    install = [s for s in steps if s.startswith("RUN pip install")]
    assert len(install) == 1
    assert "'/opt/axolotl-grpo-plugin[vllm]'" in install[0] and "vllm==" in install[0]
    from importlib.metadata import version

    from packaging.version import Version

    if Version(version("axolotl")) >= Version("0.21"):  # 0.21 reads cloud.yaml's `image:`
        assert log["registry"] == yaml.safe_load((REPO / "cloud.yaml").read_text())["image"]
    else:  # 0.19 ignores it: its default image
        assert log["registry"].startswith("axolotlai/axolotl:")
    assert log["image_env"]["HF_HUB_CACHE"].startswith("/workspace/data/")
    assert log["local_dirs"] == [(str(REPO), "/workspace/mounts")]


def test_the_container_runs_axolotl_train_with_the_launcher_args(modal_launch, monkeypatch, tmp_path):
    log, modal_ = modal_launch
    args, kwargs = log["remote"]
    config_yaml = args[0]
    assert config_yaml == (REPO / "configs" / "gsm8k.yaml").read_text()
    assert kwargs["launcher"] == "accelerate" and kwargs["launcher_args"] == ["--num_processes", "1"]

    ran = []
    real_open = open
    monkeypatch.setattr(modal_, "run_cmd", lambda cmd, folder, volumes=None: ran.append((cmd, folder)))
    monkeypatch.setattr(modal_, "Path", lambda p: Path(str(p).replace("/workspace/mounts", str(tmp_path))))
    monkeypatch.setattr(modal_, "open", lambda p, *a, **k: real_open(
        str(p).replace("/workspace/mounts", str(tmp_path)), *a, **k), raising=False)
    log["fn"](*args, **kwargs)  # the function body that runs in the container
    assert ran == [("axolotl train --launcher accelerate /workspace/mounts/config.yaml -- --num_processes 1",
                    "/workspace/mounts")]
    assert (tmp_path / "config.yaml").read_text() == config_yaml


def test_the_shipped_config_autostarts_vllm_on_the_second_gpu(modal_launch):
    """In the container: 2 GPUs, 1 training process (from `-- --num_processes 1`)."""
    log, _ = modal_launch
    cfg = yaml.safe_load(log["remote"][0][0])
    assert cfg["grpo_plugin"]["vllm_autostart"] is True
    gpus = ["0", "1"]
    layout = split_gpus(gpus, cfg["grpo_plugin"].get("vllm_gpus"))
    assert layout.server == ("1",) and layout.trainer == ("0",)
    check_launch(layout, gpus, local_processes=1, config="/workspace/mounts/config.yaml")
    with pytest.raises(GpuLayoutError):  # without the launcher args accelerate would start 2
        check_launch(layout, gpus, local_processes=2, config="/workspace/mounts/config.yaml")


def test_the_copied_files_build_a_wheel_with_the_whole_plugin(tmp_path):
    """The image's COPY + pip install steps, run here on the same files (no network)."""
    steps = yaml.safe_load((REPO / "cloud.yaml").read_text())["dockerfile_commands"]
    target = tmp_path / "opt"
    for step in steps:
        match = re.fullmatch(r"COPY (.+) /opt/axolotl-grpo-plugin/(\S*)", step)
        if not match:
            continue
        *sources, dest = step.split()[1:]
        for source in sources:
            src = REPO / source
            if source == "README.md" and not src.exists():
                (target / "README.md").parent.mkdir(parents=True, exist_ok=True)
                (target / "README.md").write_text("stand-in: this checkout has no README yet\n")
                continue
            assert src.exists(), f"cloud.yaml copies {source}, which is not in the repository"
            out = target / dest.removeprefix("/opt/axolotl-grpo-plugin/")
            if src.is_dir():
                shutil.copytree(src, out, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                out.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, out / src.name)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "-q", "-w", str(tmp_path / "wheels"), str(target)],
                          capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stderr
    wheel = next((tmp_path / "wheels").glob("axolotl_grpo_plugin-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("axolotl_grpo_plugin/plugin.py", "axolotl_grpo_plugin/vllm/group_leader.py",
                   "axolotl_grpo_plugin/vllm/autostart.py", "axolotl_grpo_rewards/gsm8k.py",
                   "axolotl_grpo_plugin/data/gsm8k_sample.jsonl"):
        assert needed in names
