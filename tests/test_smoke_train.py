"""`axolotl train` on CPU with the plugin, exactly as a user runs it."""

import math

import pytest
import yaml
from conftest import run_axolotl_train

from axolotl_grpo_plugin.training import release_memory


REWARD_KEYS = [f"rewards/{name}_reward_func/mean"
               for name in ("correctness", "int", "strict_format", "soft_format", "xmlcount")]


def smoke_config(repo_root, model_dir, out_dir, **overrides):
    cfg = yaml.safe_load((repo_root / "configs/smoke.yaml").read_text())
    cfg["base_model"] = str(model_dir)
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(out_dir)
    cfg.update(overrides)
    path = out_dir.parent / f"{out_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path, cfg


@pytest.mark.integration
def test_smoke_config_trains_on_cpu(repo_root, embedded_model_dir, tmp_path):
    # plus one GRPOConfig option Axolotl 0.19 has no key for, through grpo_plugin.trl_args, and glibc
    # told to hand freed memory back from the start (training/release_memory.py)
    config, cfg = smoke_config(repo_root, embedded_model_dir, tmp_path / "out",
                               grpo_plugin={"trl_args": {"disable_dropout": True}, "cpu_release_memory": True})
    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert len(steps) == cfg["max_steps"]
    assert any(step["zero_advantage/skipped_share"] < 1 for step in steps)  # some steps trained rows
    for step in steps:
        for key in REWARD_KEYS:
            assert math.isfinite(step[key])
        # rows with advantage 0 run no forward (training/zero_advantage.py); the others run at their own length
        assert 0 <= step["zero_advantage/skipped_share"] <= 1
        if step["zero_advantage/skipped_share"] < 1:
            assert 0 <= step["padding/trimmed_share"] < 1
        else:
            assert "padding/trimmed_share" not in step and "entropy" not in step
        # the trainer's memory, on a run without CUDA (observe/cpu_memory.py)
        assert 0 < step["memory/rss_gib"] <= step["memory/peak_rss_gib"]
        assert 0 < step["memory/headroom_share"] < 1 and step["memory/available_gib"] > 0
    out = tmp_path / "out"
    assert (out / "config.json").is_file() and (out / "model.safetensors").is_file()
    # read back from the trainer's GRPOConfig (TRL's default is False)
    assert "GRPOConfig from grpo_plugin.trl_args: disable_dropout=True" in proc.stdout + proc.stderr
    if release_memory.glibc() is not None:
        assert "grpo_plugin.cpu_release_memory: true: from now on glibc hands" in proc.stdout + proc.stderr


@pytest.mark.integration
def test_bad_config_stops_before_the_model_loads(repo_root, embedded_model_dir, tmp_path):
    config, _ = smoke_config(repo_root, embedded_model_dir, tmp_path / "out", bf16="auto")
    cfg = yaml.safe_load(config.read_text())
    cfg["trl"]["reward_funcs"] = ["correctnes"]
    config.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(config, cwd=tmp_path, timeout=300)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not steps
    assert "axolotl-grpo-plugin found 2 config problems" in output
    assert "Did you mean 'correctness'?" in output and "bf16 = 'auto'" in output
    assert "Mapping RL Dataset" not in output and not (tmp_path / "out" / "config.json").exists()


@pytest.mark.integration
def test_a_code_config_trains_on_cpu(repo_root, embedded_model_dir, tmp_path):
    """Code as a task through Axolotl and TRL: the `code` transform in Axolotl's map (its function
    pickled to the map's processes), the references checked in the sandbox, the code rewards scored
    on the `tests` column every step (issue 65). HumanEval held out as the code configs hold it
    (`test_datasets`, no eval schedule), with an eval batch TRL would refuse if it evaluated: the
    plugin's check let it through and the run neither evaluates nor stops."""
    from axolotl_grpo_rewards import sandbox

    if (problem := sandbox.make_sandbox(sandbox.Settings()).problem()):
        pytest.skip(f"no namespaces here: {problem}")
    config, cfg = smoke_config(repo_root, embedded_model_dir, tmp_path / "out", max_steps=2,
                               datasets=[{"path": str(repo_root / "axolotl_grpo_plugin/data/code_sample.jsonl"),
                                          "type": "code"}],
                               test_datasets=[{"path": str(repo_root / "axolotl_grpo_plugin/data/humaneval.jsonl"),
                                               "type": "humaneval"}], eval_batch_size=2)
    cfg["trl"]["reward_funcs"] = ["code_pass_rate", "code_all_pass", "soft_format"]
    config.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(config, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert len(steps) == 2 and "'eval_" not in proc.stdout + proc.stderr
    for step in steps:
        for name in ("code_pass_rate", "code_all_pass"):
            assert math.isfinite(step[f"rewards/{name}/mean"]) and step[f"rewards/{name}/errors"] == 0
