"""The trackers get it all: a CPU `axolotl train` with `wandb_mode: offline` leaves in the W&B run
files the per-reward means, `observe/*`, `eval/*` (the periodic evaluation) and a completions
table. Read back from the offline run's `.wandb` file (W&B's LevelDB-style record log of
protobuf records). Skips cleanly when wandb is not installed."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from axolotl_grpo_plugin.config.run import read_run
from axolotl_grpo_plugin.observe import read_rollouts


BLOCK = 32768
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def wandb_records(path: Path):
    """The protobuf Records of an offline run file: a 7-byte ':W&B' header, then LevelDB log
    blocks of 32 KiB whose records (crc32c, length, type) may span blocks."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding (preallocated or trailer)
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == FULL:
            pending = chunk
        elif kind == FIRST:
            pending = chunk
            continue
        elif kind == MIDDLE:
            pending += chunk
            continue
        elif kind == LAST:
            pending += chunk
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        pending = b""
        yield record


def history(run_file: Path) -> list[dict]:
    rows = []
    for record in wandb_records(run_file):
        if record.WhichOneof("record_type") == "history":
            row = {}
            for item in record.history.item:
                key = item.key or "/".join(item.nested_key)
                row[key] = json.loads(item.value_json)
            rows.append(row)
    return rows


@pytest.mark.integration
@pytest.mark.slow
def test_wandb_offline_run_holds_rewards_observe_eval_and_completions(repo_root, embedded_model_dir, tmp_path):
    pytest.importorskip("wandb", reason="wandb is not installed (add it to the dev extra)")
    import yaml
    from conftest import run_axolotl_train

    from axolotl_grpo_plugin.config.load import read_yaml

    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["trl"]["log_completions"] = True
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"), max_steps=2,
               dataset_prepared_path=str(tmp_path / "prepared"), wandb_mode="offline",
               wandb_project="grpo-plugin-test",
               grpo_plugin={"eval_every": {"steps": 2, "limit": 2, "max_new_tokens": 4, "dataset":
                                           str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")}})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    proc, _ = run_axolotl_train(config, cwd=tmp_path, timeout=900, WANDB_DIR=str(tmp_path),
                                WANDB_MODE="offline", WANDB_SILENT="true")
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "wandb").iterdir())
    rows = history(next(runs[0].glob("run-*.wandb")))
    keys = set().union(*rows)
    rewards = {k for k in keys if k.startswith("train/rewards/") and k.endswith("/mean")}
    assert {"train/rewards/correctness_reward_func/mean", "train/rewards/xmlcount_reward_func/mean"} <= rewards
    assert {"train/observe/accuracy", "train/observe/format_strict", "train/observe/mean_length",
            "train/observe/reflection_rate"} <= keys
    assert {"eval/accuracy", "eval/format_compliance", "eval/mean_length",
            "eval/rewards/correctness_reward_func/mean"} <= keys
    evals = [r for r in rows if "eval/accuracy" in r]
    assert [r["train/global_step"] for r in evals] == [2]
    logged = [r for r in read_rollouts(tmp_path / "out", everything=True) if r.get("kind") == "eval"]
    assert evals[0]["eval/mean_length"] == pytest.approx(logged[0]["metrics"]["eval/mean_length"])
    # TRL's completions table (trl.log_completions): a table-file history value and its file
    tables = [r for r in rows if r.get("completions/_type") == "table-file"]
    # one per logging step (TRL's log), and one more with the end-of-training summary log
    assert len(tables) >= cfg["max_steps"], sorted(keys)
    assert all((runs[0] / "files" / t["completions/path"]).is_file() for t in tables)
    table = json.loads((runs[0] / "files" / tables[-1]["completions/path"]).read_text())
    assert {"step", "prompt", "completion", "advantage"} <= set(table["columns"]) and len(table["data"]) == 4


# --- trackio --------------------------------------------------------------------------------

def trackio_problems(cfg, **facts):
    from axolotl_grpo_plugin.check.trainer import check_trackio
    from axolotl_grpo_plugin.system.launch import Launch

    return check_trackio(read_run(cfg), Launch(), **facts)


def test_check_refuses_trackio_too_old_for_transformers_trackio_callback():
    old = {"trackio": "0.19.0", "passes_bucket_id": True}  # Axolotl 0.19's pins
    [problem] = trackio_problems({"use_trackio": True}, **old)
    assert problem.key == "use_trackio" and problem.value is True
    assert "bucket_id" in problem.message and "0.19.0" in problem.message
    assert "use_tensorboard" in problem.fix and "trackio>=0.21.0" in problem.fix
    assert [p.key for p in trackio_problems({"trackio_project_name": "p"}, **old)] == ["use_trackio"]
    assert trackio_problems({"use_trackio": False, "trackio_project_name": "p"}, **old) == []
    assert trackio_problems({}, **old) == []
    assert trackio_problems({"use_trackio": True}, trackio="0.40.0", passes_bucket_id=True) == []  # Axolotl 0.21
    assert trackio_problems({"use_trackio": True}, trackio="0.19.0", passes_bucket_id=False) == []


def test_check_judges_the_installed_pair():
    """With the real packages: refused exactly when transformers passes bucket_id and the
    installed trackio predates it (Axolotl 0.19's own pins: refused)."""
    from packaging.version import Version
    from transformers import TrainingArguments

    from axolotl_grpo_plugin.config import defaults

    if defaults.TRACKIO_VERSION is None:
        pytest.skip("trackio is not installed")
    clash = "trackio_bucket_id" in TrainingArguments.__dataclass_fields__ and \
        Version(defaults.TRACKIO_VERSION) < Version(defaults.TRACKIO_BUCKET_ID_SINCE)
    assert bool(trackio_problems({"use_trackio": True})) == clash


def trackio_metrics(store: Path) -> list[dict]:
    """Every logged row of trackio's local store: one SQLite file per project, opened read-only
    (the project is transformers' `TrainingArguments.project`, "huggingface" by default:
    Axolotl 0.19 exports `trackio_project_name` only as an environment variable)."""
    import sqlite3

    rows = []
    for db in sorted(store.glob("*.db")):
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            if conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'metrics'").fetchone():
                rows += conn.execute("SELECT step, metrics FROM metrics ORDER BY id").fetchall()
    return [{"step": step, **json.loads(metrics)} for step, metrics in rows]


@pytest.mark.integration
def test_trackio_local_store_holds_rewards_observe_and_eval(repo_root, embedded_model_dir, tmp_path):
    """Runs where transformers and trackio agree (Axolotl 0.21's pins, or trackio >= 0.21
    installed by hand); skipped where `check` refuses the pair, at once, so it is not marked
    slow: it runs in the Axolotl 0.21 CI part (scripts/test-axolotl021.sh)."""
    pytest.importorskip("trackio", reason="trackio is not installed")
    import yaml
    from conftest import run_axolotl_train

    from axolotl_grpo_plugin.config.load import read_yaml

    if trackio_problems({"use_trackio": True}):
        pytest.skip(trackio_problems({"use_trackio": True})[0].message)
    cfg = read_yaml(repo_root / "configs" / "smoke.yaml")
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg.update(base_model=str(embedded_model_dir), output_dir=str(tmp_path / "out"), max_steps=2,
               dataset_prepared_path=str(tmp_path / "prepared"), use_trackio=True,
               trackio_project_name="grpo-plugin-test", trackio_run_name="run1",
               grpo_plugin={"eval_every": {"steps": 2, "limit": 2, "max_new_tokens": 4, "dataset":
                                           str(repo_root / "axolotl_grpo_plugin/data/gsm8k_sample_test.jsonl")}})
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    store = tmp_path / "trackio"
    proc, _ = run_axolotl_train(config, cwd=tmp_path, timeout=900, TRACKIO_DIR=str(store))
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    rows = trackio_metrics(store)
    keys = set().union(*rows)
    assert {"train/rewards/correctness_reward_func/mean", "train/rewards/xmlcount_reward_func/mean"} <= keys
    assert {"train/observe/accuracy", "train/observe/format_strict", "train/observe/mean_length",
            "train/observe/reflection_rate"} <= keys
    assert {"eval/accuracy", "eval/format_compliance", "eval/mean_length"} <= keys
    evals = [r for r in rows if "eval/accuracy" in r]
    logged = [r for r in read_rollouts(tmp_path / "out", everything=True) if r.get("kind") == "eval"]
    assert [r["train/global_step"] for r in evals] == [2]
    assert evals[0]["eval/mean_length"] == pytest.approx(logged[0]["metrics"]["eval/mean_length"])
