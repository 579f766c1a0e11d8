"""Import-path rewards and transforms (`my_module.my_reward`) resolve the same way in `check`,
`axolotl train` and the tools, whether started as `axolotl-grpo X` or `python -m`: the config's
folder first, then the working folder (names.py: import_folders)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.names import import_folders, load_config, resolve_names


# A module name found nowhere else (not in the checkout, not installed).
MODULE = "issue31_rewards"
REWARD = '''
def my_reward(completions, **kwargs):
    """Pays 1.0 for every completion, so the run's logs show the reward was called."""
    return [1.0 for _ in completions]
'''


def _config(folder: Path, repo_root: Path, reward: str, **changes) -> Path:
    """configs/smoke.yaml with one import-path reward added, written into `folder`."""
    cfg = yaml.safe_load((repo_root / "configs" / "smoke.yaml").read_text())
    cfg["base_model"] = str(repo_root / cfg["base_model"])
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["trl"]["reward_funcs"] = ["correctness", reward]
    cfg.update(changes)
    (folder / f"{MODULE}.py").write_text(REWARD)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture
def two_folders(tmp_path, monkeypatch):
    """(the config's folder, another working folder), with the module unimported."""
    config_dir, elsewhere = tmp_path / "config", tmp_path / "elsewhere"
    config_dir.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    return config_dir, elsewhere


def test_the_configs_folder_comes_first_then_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert import_folders("sub/c.yaml") == [tmp_path / "sub", tmp_path]
    assert import_folders(None) == [tmp_path]


def test_a_reward_beside_the_config_loads_from_another_folder(two_folders, repo_root):
    config_dir, _ = two_folders
    cfg = load_config(_config(config_dir, repo_root, f"{MODULE}.my_reward"))
    assert cfg["trl"]["reward_funcs"][1] == f"axolotl_grpo_plugin.reward_path__{MODULE}__my_reward"
    assert Path(sys.modules[MODULE].__file__).parent == config_dir


def test_axolotl_records_the_config_path_and_train_resolves_from_it(two_folders, repo_root):
    """At train time the plugin gets Axolotl's DictDefault with `axolotl_config_path` set."""
    from axolotl.utils.dict import DictDefault

    config_dir, _ = two_folders
    path = _config(config_dir, repo_root, f"{MODULE}.my_reward")
    cfg = DictDefault({**yaml.safe_load(path.read_text()), "axolotl_config_path": str(path)})
    assert resolve_names(cfg, read_run(cfg))[1] == []


def test_a_missing_module_says_where_it_looked_and_what_to_do(two_folders, repo_root):
    config_dir, elsewhere = two_folders
    path = _config(config_dir, repo_root, "not_written_anywhere.my_reward")
    with pytest.raises(GRPOConfigError) as caught:
        load_config(path)
    text = caught.value.render()
    assert "no module `not_written_anywhere`" in text
    assert str(config_dir) in text and str(elsewhere) in text
    assert str(config_dir / "not_written_anywhere.py") in text


def test_a_missing_function_names_the_file_it_looked_in(two_folders, repo_root):
    config_dir, _ = two_folders
    with pytest.raises(GRPOConfigError) as caught:
        load_config(_config(config_dir, repo_root, f"{MODULE}.other_reward"))
    assert f"{config_dir / MODULE}.py has no `other_reward`" in caught.value.render()


@pytest.mark.parametrize(("reward", "says"), [
    ("os.nosuchfn", f"{os.__file__} has no `nosuchfn`"),  # os is a frozen module: its origin is `frozen`
    ("sys.nosuchfn", "module `sys` has no `nosuchfn`"),  # built-in: no file at all
    ("json.decoder.nosuchfn", "json/decoder.py has no `nosuchfn`"),  # the submodule's file, not the package's
    ("axolotl_grpo_rewards.nosuchmod.fn", "no module `axolotl_grpo_rewards.nosuchmod`"),
])
def test_a_missing_function_names_the_module_the_config_wrote(tmp_path, reward, says):
    run = read_run({"rl": "grpo", "trl": {"reward_funcs": [reward]}})
    _, problems = resolve_names({"trl": {"reward_funcs": [reward]}}, run)
    text = f"{problems[0].message} {problems[0].fix}"
    assert says in text and "frozen" not in text and "built-in" not in text and "__init__.py" not in text, text


def test_a_transform_beside_the_config_loads_from_another_folder(two_folders, repo_root):
    config_dir, _ = two_folders
    path = _config(config_dir, repo_root, "correctness")
    (config_dir / "my_data.py").write_text(
        "from axolotl_grpo_plugin.transforms.gsm8k import load\n")
    cfg = yaml.safe_load(path.read_text())
    cfg["datasets"][0]["type"] = "my_data.load"
    path.write_text(yaml.safe_dump(cfg))
    sys.modules.pop("my_data", None)
    assert load_config(path)["datasets"][0]["type"] == "my_data.load"


@pytest.mark.parametrize("command", ["installed", "module"])
def test_check_finds_it_from_another_folder_both_ways(two_folders, repo_root, command):
    config_dir, elsewhere = two_folders
    path = _config(config_dir, repo_root, f"{MODULE}.my_reward")
    if command == "installed":
        exe = shutil.which("axolotl-grpo", path=str(Path(sys.executable).parent))
        assert exe, "the axolotl-grpo command is not installed beside this python"
        argv = [exe, "check"]
    else:
        argv = [sys.executable, "-m", "axolotl_grpo_plugin.check"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}  # no warning about the trainer's threads: only OK is expected
    proc = subprocess.run([*argv, str(path), "--cpu"], cwd=elsewhere, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("OK:"), proc.stdout


@pytest.mark.slow
def test_axolotl_train_calls_a_reward_beside_the_config_from_another_folder(two_folders, repo_root,
                                                                           embedded_model_dir):
    from conftest import run_axolotl_train

    config_dir, elsewhere = two_folders
    path = _config(config_dir, repo_root, f"{MODULE}.my_reward", max_steps=1,
                   output_dir=str(config_dir / "out"), dataset_prepared_path=str(config_dir / "prepared"))
    proc, steps = run_axolotl_train(path, cwd=elsewhere)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    means = [v for k, v in steps[0].items() if k.startswith("rewards/") and "my_reward" in k and k.endswith("/mean")]
    assert means == [1.0], steps[0]
