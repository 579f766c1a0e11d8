"""`check --cloud cloud.yaml`: a Modal launch keeps checkpoints only on a volume, and Axolotl's
Modal runner needs the local docker CLI (check/cloud.py)."""

from __future__ import annotations

import pytest
import yaml

from axolotl_grpo_plugin.check import cloud


@pytest.fixture
def shipped(repo_root):
    return cloud.read_cloud(str(repo_root / "cloud.yaml"))


def test_an_output_dir_in_the_container_is_lost_and_the_fix_names_the_artifacts_volume(shipped, monkeypatch):
    monkeypatch.setattr(cloud.shutil, "which", lambda name: "/usr/bin/docker")
    [warning] = cloud.warnings(shipped, "cloud.yaml", "./outputs/gsm8k-grpo")
    assert "not on a volume of cloud.yaml" in warning
    assert "output_dir: /workspace/artifacts/gsm8k-grpo" in warning


def test_the_shipped_modal_config_writes_to_a_volume(shipped, repo_root, monkeypatch):
    monkeypatch.setattr(cloud.shutil, "which", lambda name: "/usr/bin/docker")
    cfg = yaml.safe_load((repo_root / "configs" / "gsm8k-modal.yaml").read_text())
    assert cloud.warnings(shipped, "cloud.yaml", cfg["output_dir"]) == []
    assert cfg["dataset_prepared_path"].startswith(cfg["output_dir"])


def test_a_missing_docker_cli_is_said_before_launching(shipped, monkeypatch):
    monkeypatch.setattr(cloud.shutil, "which", lambda name: None)
    without_image = {k: v for k, v in shipped.items() if k != "image"}  # every Axolotl asks docker then
    [warning] = cloud.warnings(without_image, "cloud.yaml", "/workspace/artifacts/run")
    assert "`docker` CLI is not installed here" in warning


def test_check_cloud_warns_for_the_local_config_and_checks_the_containers_gpus(repo_root, capsys, monkeypatch):
    from axolotl_grpo_plugin.commands import check as check

    monkeypatch.chdir(repo_root)
    assert check.main(["configs/gsm8k.yaml", "--cloud", "cloud.yaml", "--processes", "1"]) == 0
    out = capsys.readouterr().out
    assert "output_dir = './outputs/gsm8k-grpo' is not on a volume of cloud.yaml" in out
    assert "on GPU, 2 GPUs visible" in out  # cloud.yaml's gpu_count


@pytest.mark.parametrize("text, said", [(None, "file not found"), ("[1, 2]\n", "does not hold a mapping of keys")])
def test_a_wrong_cloud_file_is_named_by_its_flag_with_a_cloud_fix(text, said, tmp_path):
    from axolotl_grpo_plugin.errors import PluginError

    path = tmp_path / "cloud.yaml"
    if text is not None:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(PluginError) as caught:
        cloud.read_cloud(str(path))
    [problem] = caught.value.problems
    assert problem.key == "--cloud" and said in problem.message and "--cloud` reads" in problem.fix
    assert "relative paths" not in problem.message  # an absolute path needs no working folder


def test_a_cloud_file_with_too_few_gpus_is_named_with_the_count_to_set(repo_root, tmp_path, capsys):
    """gpu_count 1 for a run with its vLLM server on a GPU of its own: the fix is the cloud file's
    gpu_count (it once said "use a machine with one more GPU")."""
    from axolotl_grpo_plugin.commands import check as check

    small = tmp_path / "cloud.yaml"
    small.write_text((repo_root / "cloud.yaml").read_text().replace("gpu_count: 2", "gpu_count: 1"))
    assert check.main([str(repo_root / "configs" / "gsm8k.yaml"), "--cloud", str(small), "--offline"]) == 2
    err = capsys.readouterr().err
    assert f"gpu_count in {small} = '1': too few GPUs: the launch needs 2 GPUs" in err
    assert f"Fix: set `gpu_count: 2` (or more) in {small}" in err
