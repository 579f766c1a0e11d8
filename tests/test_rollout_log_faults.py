"""The rollout log under faults (issue 15): a failed write drops one step, not the rest of the
run; what was lost is counted and said; two runs on one output_dir: the second is refused."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import textwrap
import uuid

import pytest

from axolotl_grpo_plugin.rollouts import log as rollout_log
from axolotl_grpo_plugin.rollouts.log import RolloutLogWriter, read_rollouts
from axolotl_grpo_plugin.training import run_lock


def _records(step, n=4, size=10):
    return [{"step": step, "i": i, "completion": "x" * size} for i in range(n)]


def test_a_failed_fsync_drops_one_step_and_the_next_step_says_so(tmp_path, monkeypatch, caplog):
    real_fsync, calls = os.fsync, []

    def flaky_fsync(fd):
        calls.append(fd)
        if len(calls) in (2, 3):  # steps 2 and 3: the disk is full
            raise OSError(28, "No space left on device")
        real_fsync(fd)

    monkeypatch.setattr(rollout_log.os, "fsync", flaky_fsync)
    writer = RolloutLogWriter(tmp_path)
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        results = [writer.write_step(_records(step)) for step in (1, 2, 3, 4, 5)]
    writer.close()
    assert results == [True, False, False, True, True]
    records = list(read_rollouts(tmp_path))
    assert [r["step"] for r in records] == [1] * 4 + [4] * 4 + [5] * 4  # steps 2, 3 cut back out
    assert records[4]["dropped"] == 8 and sum("dropped" in r for r in records) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert sum("cannot write the rollout log" in m for m in messages) == 1  # once per outage
    assert any("written again; 8 records were lost" in m for m in messages)
    assert writer.dropped == 8 and "lost 8 records in 2 failed writes" in writer.summary()


def test_a_failed_rotation_keeps_the_lines_and_rotates_later(tmp_path, monkeypatch):
    real_replace, calls = os.replace, []

    def racy_replace(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            raise FileNotFoundError(2, "renamed away by someone else", str(src))
        real_replace(src, dst)

    monkeypatch.setattr(rollout_log.os, "replace", racy_replace)
    writer = RolloutLogWriter(tmp_path, max_mb=0.0001)  # rotate after every step
    assert all(writer.write_step(_records(step)) for step in (1, 2, 3))
    writer.close()
    assert [r["step"] for r in read_rollouts(tmp_path)] == [s for s in (1, 2, 3) for _ in range(4)]
    assert writer.dropped == 0 and writer.summary() is None
    assert any(p.name.endswith(".jsonl.gz") for p in tmp_path.iterdir())


def test_a_rotation_killed_mid_gzip_leaves_a_readable_part_and_its_temp_is_cleaned(tmp_path):
    writer = RolloutLogWriter(tmp_path)
    writer.write_step(_records(1))
    writer.close()
    (tmp_path / "rollouts.jsonl").rename(tmp_path / "rollouts.1.jsonl")  # killed after the move,
    stale = tmp_path / ".rollouts.1.jsonl.gz.k3j2.tmp"  # while gzipping into the temp file
    stale.write_bytes(b"\x1f\x8b partial")
    writer = RolloutLogWriter(tmp_path)
    writer.write_step(_records(2))
    writer.close()
    assert not stale.exists()
    assert [r["step"] for r in read_rollouts(tmp_path)] == [1] * 4 + [2] * 4


@pytest.fixture
def small_tmpfs(tmp_path):
    """A real 64 KiB filesystem (needs root and mount); the test is skipped elsewhere."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
                      capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root); the fault-injection tests cover this")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


def test_a_full_disk_loses_only_the_steps_written_while_it_was_full(small_tmpfs):
    filler = small_tmpfs / "filler"
    filler.write_bytes(b"\0" * (48 * 1024))
    writer = RolloutLogWriter(small_tmpfs, max_mb=0)
    results = []
    for step in range(1, 40):
        if step == 25:
            filler.unlink()  # the disk is freed mid-run
        results.append(writer.write_step(_records(step, size=300)))
    writer.close()
    assert False in results[:24] and all(results[24:]), results
    counts = {}
    records = list(read_rollouts(small_tmpfs, counts))
    written = {r["step"] for r in records}
    lost = [step for step, ok in enumerate(results, 1) if not ok]
    assert written == set(range(1, 40)) - set(lost)
    assert counts.get("skipped", 0) == 0  # partial writes were cut back to whole lines
    first_after = next(r for r in records if r["step"] > lost[0])
    assert first_after["dropped"] == 4 * len([s for s in lost if s < first_after["step"]])
    assert writer.dropped == 4 * len(lost)


# --- two runs, one output_dir ----------------------------------------------------------------

HOLDER = textwrap.dedent("""
    import sys
    from axolotl_grpo_plugin.training import run_lock
    from axolotl_grpo_plugin.errors import PluginError
    try:
        run_lock.hold(sys.argv[1])
    except PluginError as exc:
        print("REFUSED", exc.render(), flush=True)
        sys.exit(2)
    print("HELD", flush=True)
    sys.stdin.read()  # hold until the test closes our stdin
""")


def _holder(out_dir):
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(out_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env={**os.environ})


def test_a_second_run_on_the_same_output_dir_is_refused_until_the_first_ends(tmp_path):
    out = tmp_path / "out"
    first = _holder(out)
    try:
        assert first.stdout.readline().strip() == "HELD"
        second = subprocess.run([sys.executable, "-c", HOLDER, str(out)], input="",
                                capture_output=True, text=True, timeout=60)
        assert second.returncode == 2 and "REFUSED" in second.stdout
        assert "output_dir" in second.stdout and f"pid {first.pid}" in second.stdout
        assert "give this run its own `output_dir`" in second.stdout
        assert "Traceback" not in second.stderr
    finally:
        first.stdin.close()
        first.wait(timeout=30)
    third = subprocess.run([sys.executable, "-c", HOLDER, str(out)], input="",
                           capture_output=True, text=True, timeout=60)
    assert third.returncode == 0 and "HELD" in third.stdout  # a dead run leaves no stale lock


def test_a_killed_run_leaves_no_stale_lock(tmp_path):
    out = tmp_path / "out"
    first = _holder(out)
    assert first.stdout.readline().strip() == "HELD"
    first.kill()
    first.wait(timeout=30)
    second = subprocess.run([sys.executable, "-c", HOLDER, str(out)], input="",
                            capture_output=True, text=True, timeout=60)
    assert second.returncode == 0, second.stdout + second.stderr


def test_the_lock_is_reentrant_in_one_process_and_refuses_a_planted_link(tmp_path):
    out = tmp_path / f"out-{uuid.uuid4().hex}"
    try:
        assert run_lock.hold(out) == run_lock.hold(out)  # a second hook call in one process is fine
    finally:
        run_lock.release(out)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    other = tmp_path / "other"
    other.mkdir()
    (other / run_lock.LOCK_NAME).symlink_to(victim)
    with pytest.raises(run_lock.OutputDirInUse, match="symlink") as info:
        run_lock.hold(other)
    assert "fix: remove" in info.value.render() and victim.read_text() == "keep"


def test_a_filesystem_without_flock_warns_and_trains_on(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(37, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="axolotl_grpo_plugin"):
        assert run_lock.hold(tmp_path / "nfs") is None
    assert "cannot be locked" in caplog.text and "No locks available" in caplog.text


def test_the_plugin_refuses_a_busy_output_dir_with_one_readable_exit(tmp_path):
    from axolotl_grpo_plugin.plugin import reported_as_exit

    out = tmp_path / "out"
    first = _holder(out)
    try:
        assert first.stdout.readline().strip() == "HELD"
        with pytest.raises(SystemExit) as info, reported_as_exit():
            run_lock.hold(out)
        text = str(info.value.code)
        assert "output_dir = " in text and "another training run is using this directory" in text
    finally:
        first.stdin.close()
        first.wait(timeout=30)
    assert json.loads(json.dumps(str(out)))  # sanity: the path is plain text


def test_axolotl_train_on_a_busy_output_dir_stops_before_data_and_model(tmp_path, embedded_model_dir):
    """The lock is taken in `register`: a second `axolotl train` on a live run's output_dir
    exits with the readable refusal before it prepares data, loads a model or starts a vLLM
    server (taken in post_trainer_create, it used to do all three first)."""
    import yaml
    from conftest import REPO_ROOT, run_axolotl_train

    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(REPO_ROOT / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(tmp_path / "out")
    cfg["dataset_prepared_path"] = str(tmp_path / "prepared")
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    first = _holder(tmp_path / "out")
    try:
        assert first.stdout.readline().strip() == "HELD"
        proc, steps = run_axolotl_train(path, cwd=tmp_path, timeout=300)
    finally:
        first.stdin.close()
        first.wait(timeout=30)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and not steps, text[-3000:]
    assert "another training run is using this directory" in text and f"pid {first.pid}" in text, text[-3000:]
    # (accelerate's launcher adds its own CalledProcessError traceback, as for any failed run)
    assert not re.search(r'File ".*(axolotl/cli/train|axolotl_grpo_plugin/.*)\.py"', text), text[-3000:]
    assert not (tmp_path / "prepared").exists(), "the refused run prepared the dataset first"
    assert not any(m in text for m in ("Loading checkpoint", "loading weights", "Loading model")), text[-3000:]


def test_check_warns_about_a_busy_output_dir_without_taking_it(tmp_path, capsys):
    """`check` asks the lock what `axolotl train` would find (a warning: the run may have ended
    by launch time) and leaves it as it was: free after the holder ends."""
    import yaml
    from conftest import REPO_ROOT

    from axolotl_grpo_plugin.commands import check as check

    out = tmp_path / "out"
    cfg = yaml.safe_load((REPO_ROOT / "configs" / "smoke.yaml").read_text())
    cfg["output_dir"] = str(out)
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert run_lock.holder(out) is None  # no lock file yet
    first = _holder(out)
    try:
        assert first.stdout.readline().strip() == "HELD"
        assert f"pid {first.pid}" in run_lock.holder(out)
        assert check.main([str(path), "--cpu"]) == 0
        printed = capsys.readouterr().out
        assert "warning: output_dir = " in printed and "another training run is using this directory" in printed
        assert f"pid {first.pid}" in printed
    finally:
        first.stdin.close()
        first.wait(timeout=30)
    assert run_lock.holder(out) is None
    assert check.main([str(path), "--cpu"]) == 0
    assert "another training run" not in capsys.readouterr().out
    try:
        assert run_lock.hold(out) is not None  # asking left nothing held
    finally:
        run_lock.release(out)
