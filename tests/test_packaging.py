"""What `pip install <wheel>` gives a user (issue 22): the plugin, the rewards under a name
that cannot clash, the packaged configs and data, and the `axolotl-grpo` command, all
working from a folder outside the checkout.

The wheel goes into a fresh venv that sees the dependencies already installed in the
running interpreter's site-packages through a `.pth` line. A directory named in a `.pth`
file is put on sys.path without its own `.pth` files being run, so the editable finder
that maps `axolotl_grpo_plugin` to a checkout stays off: what imports is the wheel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.commands import COMMANDS
from axolotl_grpo_plugin.system.paths import CONFIGS_DIR, packaged_config_names


REPO_ROOT = Path(__file__).resolve().parents[1]
LAUNCHERS = ("axolotl", "accelerate")  # console scripts of dependencies `axolotl train` runs


def test_repo_configs_are_the_packaged_files():
    """configs/demo.yaml, smoke.yaml and smollm2-* in the checkout are the packaged files, not copies."""
    for name in packaged_config_names():
        repo_copy = REPO_ROOT / "configs" / f"{name}.yaml"
        assert repo_copy.resolve() == (CONFIGS_DIR / f"{name}.yaml").resolve(), repo_copy
    assert {"demo", "smoke", "smollm2-gsm8k-sft", "smollm2-gsm8k-grpo-cpu"} <= set(packaged_config_names())


def test_every_command_module_has_a_main():
    import importlib

    for name, (module, _) in COMMANDS.items():
        assert callable(importlib.import_module(module).main), name


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory) -> Path:
    """A venv holding only the wheel built from this checkout, plus the running
    interpreter's site-packages (read-only, through a .pth line)."""
    root = tmp_path_factory.mktemp("wheel")
    # build from a copy: an in-tree build leaves build/ and an egg-info in the checkout
    source = root / "src"
    shutil.copytree(REPO_ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".cache", "outputs", "build", "dist", "*.egg-info", ".venv*", "__pycache__", ".*_cache"))
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
         str(source)], capture_output=True, text=True, timeout=300, env=clean)
    assert build.returncode == 0, build.stderr[-3000:]
    wheel = next((root / "dist").glob("axolotl_grpo_plugin-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    # the running pip installs into the new venv (--python): nothing touches this interpreter's env
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "-q", str(wheel)],
        capture_output=True, text=True, timeout=300, env=clean)
    assert install.returncode == 0, install.stderr[-3000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    Path(purelib, "_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for script in LAUNCHERS:  # the dependencies' launchers, on the new interpreter
        source = Path(sys.executable).parent / script
        body = source.read_text().split("\n", 1)[1]
        target = venv / "bin" / script
        target.write_text(f"#!{python}\n{body}")
        target.chmod(0o755)
    return venv


def user_env(venv: Path, **extra: str) -> dict[str, str]:
    """A user's shell with the venv activated: no PYTHONPATH, offline, no telemetry."""
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PATH=os.pathsep.join([str(venv / "bin"), "/usr/bin", "/bin"]), VIRTUAL_ENV=str(venv),
               AXOLOTL_DO_NOT_TRACK="1", HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               WANDB_MODE="disabled", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_wheel_imports_itself_not_the_checkout(wheel_venv, tmp_path):
    proc = run([str(wheel_venv / "bin" / "python"), "-c",
                "import axolotl_grpo_plugin, axolotl_grpo_rewards, importlib.util as u;"
                "print(axolotl_grpo_plugin.__file__); print(axolotl_grpo_rewards.__file__);"
                "print(u.find_spec('rewards'))"], tmp_path, user_env(wheel_venv))
    assert proc.returncode == 0, proc.stderr
    plugin, rewards, generic = proc.stdout.split("\n")[:3]
    assert plugin.startswith(str(wheel_venv)) and rewards.startswith(str(wheel_venv)), proc.stdout
    assert generic == "None", "the wheel must not install a top-level `rewards`"


def test_every_subcommand_answers_help(wheel_venv, tmp_path):
    env = user_env(wheel_venv)
    top = run(["axolotl-grpo", "--help"], tmp_path, env)
    assert top.returncode == 0 and all(name in top.stdout for name in COMMANDS), top.stdout + top.stderr
    for name in COMMANDS:
        proc = run(["axolotl-grpo", name, "--help"], tmp_path, env)
        assert proc.returncode == 0 and "usage:" in proc.stdout, f"{name}: {proc.stdout}{proc.stderr}"
        assert "../shared" not in proc.stdout, f"`{name} --help` points at data a user does not have"
    assert not list(tmp_path.iterdir()), "--help wrote into the working directory"


@pytest.mark.integration
def test_installed_tools_run_on_packaged_files(wheel_venv, tmp_path, embedded_model_dir):
    """`configs` writes usable copies; `check` and `stats` run on them outside the checkout."""
    env = user_env(wheel_venv, AXOLOTL_GRPO_CACHE=str(embedded_model_dir.parent.parent))
    made = run(["axolotl-grpo", "configs", "cfg"], tmp_path, env)
    assert made.returncode == 0, made.stderr
    smoke = yaml.safe_load((tmp_path / "cfg" / "smoke.yaml").read_text())
    assert Path(smoke["datasets"][0]["path"]).is_file() and str(wheel_venv) in smoke["datasets"][0]["path"]
    assert Path(smoke["base_model"]) == embedded_model_dir
    smollm2 = {"smollm2-gsm8k-sft.yaml", "smollm2-gsm8k-sft-rs.yaml", "smollm2-gsm8k-grpo-cpu.yaml"}
    assert smollm2 <= {p.name for p in (tmp_path / "cfg").iterdir()}  # the real-model pipeline, from the wheel

    check = run(["axolotl-grpo", "check", "cfg/smoke.yaml", "--cpu"], tmp_path, env)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.startswith("OK: cfg/smoke.yaml"), check.stdout
    assert check.stderr == "", f"third-party chatter reached the screen:\n{check.stderr}"

    stats = run(["axolotl-grpo", "stats", "cfg/smoke.yaml"], tmp_path, env)
    assert stats.returncode == 0, stats.stdout + stats.stderr
    assert "gsm8k_sample.jsonl" in stats.stdout, stats.stdout


@pytest.mark.integration
def test_axolotl_train_beside_a_users_rewards_py(wheel_venv, tmp_path, embedded_model_dir):
    """A user's own rewards.py in the working directory used to break the built-in rewards
    (`No module named 'rewards.gsm8k'`): both must now train side by side."""
    env = user_env(wheel_venv, AXOLOTL_GRPO_CACHE=str(embedded_model_dir.parent.parent))
    assert run(["axolotl-grpo", "configs", ".", "--name", "smoke"], tmp_path, env).returncode == 0
    (tmp_path / "rewards.py").write_text(
        "def length_reward(completions, **kwargs):\n"
        "    return [min(1.0, len(c[0]['content']) / 32) for c in completions]\n")
    cfg = yaml.safe_load((tmp_path / "smoke.yaml").read_text())
    cfg["trl"]["reward_funcs"] = ["correctness", "rewards.length_reward"]
    cfg.update(max_steps=2, output_dir=str(tmp_path / "out"), dataset_prepared_path=str(tmp_path / "prepared"))
    (tmp_path / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    proc = run([shutil.which("axolotl", path=env["PATH"]), "train", "smoke.yaml"], tmp_path, env, timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert "rewards/length_reward/mean" in output and "rewards/correctness" in output, output[-4000:]
