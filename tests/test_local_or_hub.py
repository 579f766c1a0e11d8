"""One rule for local vs Hub (sources/data.is_local): a path that exists or has a data-file
extension is local, and missing is an error with the path resolved; only `owner/name` is a Hub id."""

from __future__ import annotations

import pytest
from conftest import prepared

from axolotl_grpo_plugin.errors import GRPOConfigError
from axolotl_grpo_plugin.sources.data import is_local
from axolotl_grpo_plugin.system.launch import Launch


@pytest.mark.parametrize(("path", "local"), [
    ("data/gsm8k_train.jsonl", True),   # one `/`, no `./`: a file all the same (issue 31)
    ("train.parquet", True),
    ("data/rows.json.gz", True),
    ("./data", True),
    ("/abs/folder", True),
    ("a/b/c", True),
    ("gsm8k", True),                    # datasets: only owner/name is a Hub id
    ("openai/gsm8k", False),
    ("Qwen/Qwen2.5-1.5B-Instruct", False),
    ("s3://bucket/rows.jsonl", False),
    ("https://host/rows.jsonl", False),
])
def test_local_or_hub(path, local):
    assert is_local(path) is local


def test_a_bare_model_name_is_a_hub_id_but_an_existing_folder_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert not is_local("gpt2", bare_name_is_hub=True)
    (tmp_path / "owner" / "name").mkdir(parents=True)
    assert is_local("owner/name")


def _smoke(repo_root, **changes):
    import yaml

    cfg = yaml.safe_load((repo_root / "configs" / "smoke.yaml").read_text())
    cfg["base_model"] = str(repo_root / cfg["base_model"])
    cfg.update(changes)
    return cfg


def test_a_missing_data_file_is_an_error_naming_the_resolved_path(repo_root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _smoke(repo_root, datasets=[{"path": "data/gsm8k_train.jsonl", "type": "gsm8k"}])
    with pytest.raises(GRPOConfigError) as caught:
        prepared(cfg, Launch(1, False))
    [problem] = caught.value.problems
    assert problem.key == "datasets[0].path"
    assert str(tmp_path / "data" / "gsm8k_train.jsonl") in problem.message


def test_a_file_beside_the_config_but_not_in_the_working_folder_says_so(repo_root, tmp_path, monkeypatch):
    (tmp_path / "config" / "data").mkdir(parents=True)
    (tmp_path / "config" / "data" / "rows.jsonl").write_text('{"question": "q", "answer": "1"}\n')
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    cfg = _smoke(repo_root, datasets=[{"path": "data/rows.jsonl", "type": "gsm8k"}],
                 axolotl_config_path=str(tmp_path / "config" / "c.yaml"))
    with pytest.raises(GRPOConfigError) as caught:
        prepared(cfg, Launch(1, False))
    [problem] = caught.value.problems
    assert f"path: {tmp_path / 'config' / 'data' / 'rows.jsonl'}" in problem.fix


def test_a_hub_dataset_is_left_to_training_with_a_warning(repo_root, monkeypatch, tmp_path):
    monkeypatch.chdir(repo_root)
    cfg = _smoke(repo_root, datasets=[{"path": "openai/gsm8k", "name": "main", "type": "gsm8k"}])
    warnings = prepared(cfg, Launch(1, False))[1]
    assert any("openai/gsm8k" in w and "not a local file" in w for w in warnings)


@pytest.mark.parametrize(("base_model", "command"), [
    (".cache/embedded/tiny-qwen2", "`axolotl-grpo embedded build`"),
    (".cache/embedded/tiny-qwen2-hd32", "`axolotl-grpo embedded build --variant hd32`"),
    (".cache/embedded/tiny-qwen2-base", "`axolotl-grpo demo`"),
    ("./models/mine", None),
])
def test_a_missing_embedded_model_says_which_command_builds_it(base_model, command, repo_root, tmp_path, monkeypatch):
    """A fresh checkout has no .cache/: `check configs/smoke.yaml` names the build, not a Hub id."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GRPOConfigError) as caught:
        prepared(_smoke(repo_root, base_model=base_model), Launch(1, False))
    [problem] = [p for p in caught.value.problems if p.key == "base_model"]
    assert f"relative paths start at {tmp_path}" in problem.message
    assert (command in problem.fix) if command else "Hub model id" in problem.fix
    with pytest.raises(GRPOConfigError) as caught:
        prepared(_smoke(repo_root, base_model=str(tmp_path / base_model)), Launch(1, False))
    assert "relative paths" not in caught.value.problems[0].message  # an absolute path says no more
