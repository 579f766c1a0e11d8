"""check = train on a corpus of broken configs (tests/data/broken_configs.yaml).

Each row is refused by `python -m axolotl_grpo_plugin.check` and by the plugin's training
path (`GRPOPlugin.register`: prepare_config, then the vLLM autostart hooks) for the same
launch, before any model load, with a message naming the key and no traceback. A few rows
also go through a real CPU `axolotl train`.
"""

from __future__ import annotations

import copy
import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT, run_axolotl_train

from axolotl_grpo_plugin.config.defaults import sleep_mode_loses_weights
from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.errors import PluginError
from axolotl_grpo_plugin.watch.sync_guard import installed_trl_version


ROWS = yaml.safe_load((Path(__file__).parent / "data" / "broken_configs.yaml").read_text())
BASES = {"smoke": "configs/smoke.yaml", "gsm8k": "configs/gsm8k.yaml"}
MODEL_LOADING = ("Loading checkpoint", "loading weights", "load_model", "Loading model", "model loaded")


def row_id(row: dict) -> str:
    return f"{row['base']}-{row['key']}-{'-'.join(map(str, row['patch'].values()))}"[:80]


def broken(row: dict, model_dir: Path) -> dict:
    cfg = yaml.safe_load((REPO_ROOT / BASES[row["base"]]).read_text())
    if row["base"] == "smoke":
        cfg["base_model"] = str(model_dir)
    for dotted, value in row["patch"].items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for parent in parents:
            node = node.setdefault(parent, {})
        if value == "__delete__":
            node.pop(leaf, None)
        else:
            node[leaf] = copy.deepcopy(value)
    return cfg


def run_check(path: Path, launch: dict) -> tuple[int, str]:
    from axolotl_grpo_plugin.commands import check as check

    argv = [str(path), "--gpu" if launch["gpu"] else "--cpu", "--processes", str(launch["processes"]),
            "--gpus", str(launch["gpus"])]
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = check.main(argv)
    return code, out.getvalue() + err.getvalue()


def run_register(cfg: dict, launch: dict, monkeypatch) -> str | None:
    """The plugin's register on this launch (no relaunch exec, no server start): its error text."""
    from axolotl_grpo_plugin.plugin import GRPOPlugin
    from axolotl_grpo_plugin.system import launch as launch_module
    from axolotl_grpo_plugin.training import run_lock
    from axolotl_grpo_plugin.vllm import autostart, relaunch

    gpus = launch["gpus"] if launch["gpu"] else 0
    procs = str(launch["processes"])
    for name in ("RANK", "LOCAL_RANK", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", procs)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", procs)
    monkeypatch.setattr(launch_module, "cuda_gpu_count", lambda: gpus)
    monkeypatch.setattr(autostart, "cuda_gpu_count", lambda: gpus)
    monkeypatch.setattr(autostart, "is_training_process", lambda *a, **k: True)
    # The relaunch step reads the config first: planning one must not crash on it either
    # (it never execs here: pytest is not `axolotl.cli.train`).
    try:
        run = read_run(copy.deepcopy(cfg))  # as register reads it: a wrong value ends register there
    except PluginError:
        run = None
    if run is not None:
        relaunch.decide_relaunch(run, {relaunch.ACCELERATE_LAUNCH_MARK: "1", "WORLD_SIZE": procs,
                                       "LOCAL_WORLD_SIZE": procs}, lambda: gpus, [], main_module=relaunch.TRAIN_MODULE)

    def no_server(path):
        raise AssertionError("the training path accepted the config and would start a server")

    monkeypatch.setattr(autostart, "vllm_serve_command", no_server)
    monkeypatch.setattr(run_lock, "hold", lambda output_dir: None)  # no lock dirs in the checkout
    try:
        GRPOPlugin().register(cfg)
    except SystemExit as exc:  # reported_as_exit: the rendered problems
        return str(exc.code)
    finally:
        autostart.after_training()
    return None


def names(text: str, key: str) -> bool:
    """The output has a problem line for `key` (or one of its items, `key[0] = ...`)."""
    return re.search(rf"{re.escape(key)}(\[\d+\])* = ", text) is not None


@pytest.fixture(scope="module")
def model_dir(embedded_model_dir):
    return embedded_model_dir


@pytest.mark.parametrize("row", ROWS, ids=row_id)
def test_check_and_training_refuse_alike(row, model_dir, tmp_path, monkeypatch, without_cpu_vllm):
    """The corpus describes machines without vLLM's CPU build (with it, `trl.use_vllm` on CPU is
    a supported run: tests/test_validation.py and tests/test_vllm_cpu.py)."""
    if row["key"] == "trl.vllm_enable_sleep_mode" and not sleep_mode_loses_weights(installed_trl_version()):
        pytest.skip("this TRL keeps pushed weights across sleep (test_weight_sync_guard covers both answers)")
    monkeypatch.chdir(REPO_ROOT)
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "data"))  # broken_transforms.py
    cfg = broken(row, model_dir)
    if "output_dir" not in row["patch"]:  # (a row may break output_dir itself)
        cfg["output_dir"] = str(tmp_path / "out")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, check_text = run_check(path, row["launch"])
    assert code == 2, f"check accepted it:\n{check_text}"
    assert names(check_text, row["key"]), check_text
    assert "Traceback" not in check_text
    train_cfg = {**copy.deepcopy(cfg), "axolotl_config_path": str(path)}
    train_text = run_register(train_cfg, row["launch"], monkeypatch)
    assert train_text is not None, "training accepted what check refused"
    assert names(train_text, row["key"]), train_text
    assert "Traceback" not in train_text


def test_the_corpus_is_large_and_covers_both_launches():
    assert len(ROWS) >= 80
    assert {row["launch"]["gpu"] for row in ROWS} == {True, False}
    assert len({row["key"] for row in ROWS}) >= 50


@pytest.mark.slow  # a real `axolotl train` each (about 30 s alone, minutes on a loaded machine)
@pytest.mark.parametrize("row", [r for r in ROWS if r.get("train")], ids=row_id)
def test_axolotl_train_refuses_before_the_model_loads(row, model_dir, tmp_path):
    cfg = broken(row, model_dir)
    for key in ("datasets", "test_datasets"):  # the subprocess runs in tmp_path
        for entry in cfg.get(key) or []:
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                entry["path"] = str(REPO_ROOT / entry["path"])
    if "output_dir" not in row["patch"]:
        cfg["output_dir"] = str(tmp_path / "out")
    cfg["dataset_prepared_path"] = str(tmp_path / "prepared")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc, steps = run_axolotl_train(path, cwd=tmp_path, timeout=300)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not steps, text[-3000:]
    assert names(text, row["key"]), text[-3000:]
    assert not [line for line in text.splitlines() if any(m in line for m in MODEL_LOADING)], text[-3000:]


def test_check_defaults_to_the_gpus_the_launch_needs():
    from axolotl_grpo_plugin.check.whole import default_gpus

    gsm8k = yaml.safe_load((REPO_ROOT / BASES["gsm8k"]).read_text())  # vllm_autostart, 1 server GPU
    assert default_gpus(read_run(gsm8k), 1, has_gpu=True) == 2
    assert default_gpus(read_run({**gsm8k, "vllm": {"tensor_parallel_size": 2}}), 3, has_gpu=True) == 5
    assert default_gpus(read_run({**gsm8k, "grpo_plugin": {}}), 3, has_gpu=True) == 3
    assert default_gpus(read_run(gsm8k), 1, has_gpu=False) == 0


@pytest.mark.parametrize("launch, needle", [
    ({"gpu": True, "processes": 1, "gpus": 0}, "error: --gpus = '0': too few GPUs: the launch needs 1 GPU: one per "
     "training process (1)."),
    ({"gpu": True, "processes": 4, "gpus": 2}, "Fix: pass --gpus 4 (or more), or fewer --processes"),
])
def test_check_refuses_fewer_gpus_than_the_launch_needs(tmp_path, launch, needle):
    """`check --gpu --gpus 0` and `--gpu --processes 4 --gpus 2` once said OK (with vLLM autostarted,
    the config's own grpo_plugin.vllm_gpus check says it; without, nothing did)."""
    cfg = yaml.safe_load((REPO_ROOT / BASES["gsm8k"]).read_text())
    cfg["grpo_plugin"] = {}
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    code, text = run_check(path, launch)
    assert code == 2 and needle in text, text


@pytest.mark.parametrize("argv, needle", [
    (["--processes", "0"], "argument --processes: '0' must be at least 1. Fix: "),
    (["--gpus", "-1"], "argument --gpus: '-1' must be at least 0. Fix: "),
    (["--cpu", "--gpus", "2"], "argument --gpus: 2 GPUs with --cpu, which uses none"),
])
def test_check_names_the_launch_flag_that_is_wrong(tmp_path, capsys, argv, needle):
    from axolotl_grpo_plugin.commands import check as check

    with pytest.raises(SystemExit) as exit_:
        check.main([str(tmp_path / "cfg.yaml"), *argv])
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


def test_the_training_launch_reads_the_gpus_it_sees(monkeypatch):
    from axolotl_grpo_plugin.system import launch as launch_module

    monkeypatch.setattr(launch_module, "cuda_gpu_count", lambda: 3)
    monkeypatch.setattr(launch_module, "machine_gpu_count", lambda: 4)
    pinned = launch_module.current_launch({"CUDA_VISIBLE_DEVICES": "1,2,3", "WORLD_SIZE": "3",
                                           "LOCAL_WORLD_SIZE": "3"}, argv=["x"])
    assert (pinned.gpus, pinned.processes, pinned.node_processes, pinned.machine_gpus) == (("1", "2", "3"), 3, 3, 4)
    plain = launch_module.current_launch({}, argv=["x"])
    assert (plain.gpus, plain.machine_gpus) == (("0", "1", "2"), 3)
