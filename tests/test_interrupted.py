"""An interrupted run is told apart from a finished one (issue 15): Axolotl's SIGINT handler
saves and exits 0; with the plugin the run exits non-zero and leaves OUTPUT_DIR/INTERRUPTED
(step, time), a log line, and a notice in the HTML report."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest
import yaml
from conftest import subprocess_env

from axolotl_grpo_plugin.training.interrupted import (
    EXIT_INTERRUPTED,
    MARKER_NAME,
    mark_interrupted,
    read_marker,
    sigint_handler,
)


# --- the handler wrapper, in-process ---------------------------------------------------------

def test_a_handler_that_exits_0_now_exits_130_after_recording():
    seen = []

    def axolotl_like(signum, frame):
        seen.append("saved")
        raise SystemExit(0)

    handler = sigint_handler(axolotl_like, lambda signum: seen.append(signum))
    with pytest.raises(SystemExit) as info:
        handler(signal.SIGINT, None)
    assert info.value.code == EXIT_INTERRUPTED == 130
    assert seen == [signal.SIGINT, "saved"]  # recorded first, then Axolotl saves


def test_other_exits_and_the_default_handler_are_kept():
    def fails(signum, frame):
        raise SystemExit(3)

    with pytest.raises(SystemExit) as info:
        sigint_handler(fails, lambda s: None)(signal.SIGINT, None)
    assert info.value.code == 3
    with pytest.raises(KeyboardInterrupt):
        sigint_handler(signal.default_int_handler, lambda s: None)(signal.SIGINT, None)


def test_a_process_told_to_ignore_ctrl_c_records_nothing_and_goes_on():
    """A background job (`axolotl train ... &` from a script) starts with SIGINT ignored: the
    run goes on, so it must not be marked interrupted."""
    seen = []
    assert sigint_handler(signal.SIG_IGN, seen.append)(signal.SIGINT, None) is None
    assert seen == []


def test_a_failing_recorder_never_stops_the_save():
    saved = []

    def boom(signum):
        raise OSError("read-only file system")

    with pytest.raises(SystemExit):
        sigint_handler(lambda s, f: (saved.append(1), exit(0)), boom)(signal.SIGINT, None)
    assert saved == [1]


def test_a_handler_that_writes_inside_an_interrupted_tee_write_does_not_wait_for_itself(monkeypatch):
    """What a SIGINT during tqdm's step line did (test_sigint_... hung, its stack: tee.write ->
    our handler -> tee.write): the handler's write nests inside the held tee lock."""
    import io

    from axolotl.utils import tee

    from axolotl_grpo_plugin.training.interrupted import reentrant_tee_lock

    monkeypatch.setattr(tee, "_lock", threading.Lock())  # Axolotl's own
    reentrant_tee_lock()
    stream = tee._StreamTee(io.StringIO())

    def interrupted_write():
        with tee._lock:  # the main thread inside a tee write when the signal came
            stream.write("the handler's line\n")

    writer = threading.Thread(target=interrupted_write, daemon=True)
    writer.start()
    writer.join(5)
    assert not writer.is_alive(), "the nested tee write waited for its own lock"
    assert stream._stream.getvalue() == "the handler's line\n"


def test_the_marker_round_trips_and_a_broken_one_still_counts(tmp_path):
    assert read_marker(tmp_path) is None
    mark_interrupted(tmp_path, 7)
    marker = read_marker(tmp_path)
    assert marker["step"] == 7 and marker["signal"] == "SIGINT" and marker["exit_status"] == 130
    (tmp_path / MARKER_NAME).write_text("{torn")
    assert read_marker(tmp_path) == {"step": None, "time": None}


# --- a real CPU `axolotl train`, interrupted after its first step -----------------------------

def _trainer_pid(launcher_pid: int, timeout: float = 120) -> int:
    """The python process running axolotl.cli.train under `accelerate launch`."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process(launcher_pid).children(recursive=True):
            try:
                if "axolotl.cli.train" in " ".join(child.cmdline()):
                    return child.pid
            except psutil.Error:
                continue
        time.sleep(0.5)
    raise AssertionError("no axolotl.cli.train process under the launcher")


@pytest.mark.integration
def test_sigint_after_the_first_step_is_recorded_and_exits_nonzero(repo_root, embedded_model_dir, tmp_path):
    out = tmp_path / "out"
    cfg = yaml.safe_load((repo_root / "configs/smoke.yaml").read_text())
    cfg["base_model"] = str(embedded_model_dir)
    cfg["datasets"][0]["path"] = str(repo_root / cfg["datasets"][0]["path"])
    cfg["output_dir"] = str(out)
    cfg["dataset_prepared_path"] = str(tmp_path / "prepared")
    cfg["max_steps"] = 500  # far more than runs before the signal
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(cfg))

    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    # PYTHONFAULTHANDLER: a trainer that hangs after the signal is sent SIGABRT below and prints
    # every thread's stack, so a failure shows where it stopped
    proc = subprocess.Popen([axolotl, "train", str(config)], cwd=tmp_path, env=subprocess_env(PYTHONFAULTHANDLER="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    lines: list[str] = []
    first_step = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "{'loss'" in line:
                first_step.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert first_step.wait(timeout=900), "".join(lines[-40:])
        # SIGINT to the trainer alone (`kill -INT PID`): Axolotl saved and exited 0, and so did
        # the launcher; a script could not tell this run from a finished one
        trainer = _trainer_pid(proc.pid)
        os.kill(trainer, signal.SIGINT)
        try:
            proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            os.kill(trainer, signal.SIGABRT)
            time.sleep(5)
            pytest.fail("the trainer did not exit within 300 s of SIGINT; its stacks:\n" + "".join(lines[-200:]))
        reader.join(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    output = "".join(lines)
    assert proc.returncode != 0, output[-3000:]
    marker = json.loads((out / MARKER_NAME).read_text())
    assert isinstance(marker["step"], int) and 1 <= marker["step"] < 500
    assert marker["exit_status"] == 130 and marker["time"]
    assert f"training interrupted by SIGINT at step {marker['step']}" in output
    assert (out / "model.safetensors").is_file()  # Axolotl's save on interrupt still happened
    report = subprocess.run([shutil.which("python", path=subprocess_env()["PATH"]) or "python", "-m",
                             "axolotl_grpo_plugin.report", str(out)],
                            env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert report.returncode == 0, report.stderr
    assert f"interrupted at step {marker['step']}" in report.stdout
    assert "This run was interrupted" in (out / "report.html").read_text()
