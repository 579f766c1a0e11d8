"""The GPU check (issue 50): its summary of a run's log, its refusals (no GPU, Axolotl missing,
too little memory, out of memory), its process-group cleanup, the per-step GPU memory metric,
the wheelhouse slimming, and the whole kit on CPU in the image-like venv (skipped without it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from axolotl_grpo_plugin.commands import gpu_check as cli
from axolotl_grpo_plugin.gpu_check import machine, measure
from axolotl_grpo_plugin.gpu_check import run as gpu_run
from axolotl_grpo_plugin.gpu_check.cases import GPU_CASES, config
from axolotl_grpo_plugin.gpu_check.measure import TrainRun, summarize
from axolotl_grpo_plugin.observe import gpu_memory


REPO = Path(__file__).resolve().parents[1]
IMAGE_VENV = Path(os.environ.get("GPU_IMAGE_VENV", Path.home() / ".cache/axolotl-grpo-plugin/venv-gpu-image"))
IMAGE_LIST = REPO.parent / "shared" / "gpu" / "image-packages.txt"


def step(n, allocated=None, reserved=None, tokens=None, **times):
    row = {"reward": 0.0, "completions/mean_length": 512.0}
    if allocated is not None:
        row |= {gpu_memory.ALLOCATED: allocated, gpu_memory.RESERVED: reserved}
    if tokens is not None:
        row["num_tokens"] = tokens
    return row | {f"time/{k}": v for k, v in times.items()}


def test_summary_takes_the_peak_over_every_step_and_times_after_the_first():
    steps = [step(1, 20.0, 21.0, 1000, step=30.0, generation=29.0),
             step(2, 30.5, 32.0, 3000, step=10.0, generation=9.0),
             step(3, 30.0, 31.5, 5000, step=12.0, generation=11.0)]
    got = summarize(steps)
    assert got["peak_allocated_gib"] == 30.5 and got["peak_reserved_gib"] == 32.0
    assert got["per_step_peak_allocated_gib"] == [20.0, 30.5, 30.0]
    assert got["step_parts"] == {"generation": 10.0, "step": 11.0}  # step 1 (30 s) left out
    assert got["tokens_per_s"] == round(4000 / 22.0, 1)  # tokens of steps 2-3 over their seconds
    assert got["completion_mean_tokens"] == 512.0


def test_summary_of_a_cpu_run_has_no_memory_and_of_nothing_no_figures():
    got = summarize([step(1, tokens=10, step=1.0), step(2, tokens=30, step=2.0)])
    assert got["peak_allocated_gib"] is None and got["per_step_peak_allocated_gib"] == []
    assert got["tokens_per_s"] == 10.0
    empty = summarize([])
    assert empty["steps"] == 0 and empty["tokens_per_s"] is None and empty["step_parts"] is None


def test_log_lines_are_read_as_the_trainer_prints_them():
    text = ("noise\n{'loss': '0', 'num_tokens': '308', 'reward': '0.5', 'memory/peak_allocated_gib': '30.58', "
            "'memory/peak_reserved_gib': '31.9', 'time/step': '11'}\n")
    (row,) = measure.parse_log_lines(text)
    assert row[gpu_memory.ALLOCATED] == 30.58 and row["time/step"] == 11.0


def test_a_timed_out_run_leaves_no_process_behind(tmp_path, monkeypatch):
    """The child starts a grandchild (as accelerate starts the trainer) and both would sleep on."""
    pids = tmp_path / "pids"
    script = (f"import os, subprocess, sys, time\n"
              f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
              f"open({str(pids)!r}, 'w').write(f'{{os.getpid()}} {{child.pid}}')\n"
              f"print(\"{{'loss': '0', 'reward': '1.0', 'time/step': '2'}}\", flush=True)\n"
              f"time.sleep(600)\n")
    monkeypatch.setattr(measure, "train_command", lambda config: [sys.executable, "-c", script])
    monkeypatch.setattr(measure, "STOP_GRACE_S", 2)
    run = measure.run_train(tmp_path / "config.yaml", tmp_path / "train.log", timeout_s=3, offline=True)
    assert run.returncode is None and len(run.steps) == 1
    for pid in map(int, pids.read_text().split()):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def fake_gpu(free_gib=140.0):
    return {"name": "NVIDIA H200", "memory_gib": 140.4, "free_gib": free_gib, "driver": "580"}


def read_report(out: Path) -> dict:
    return json.loads((out / "gpu-check.json").read_text())


def test_no_gpu_skips_every_case_and_still_writes_the_json(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli, "read_gpu", lambda: None)
    assert cli.main(["--out", str(tmp_path)]) == 1
    report = read_report(tmp_path)
    assert [c["name"] for c in report["cases"]] == [c.name for c in GPU_CASES]
    assert all("no CUDA GPU" in c["skipped"] and "--emulate" in c["skipped"] for c in report["cases"])
    assert "skipped: no CUDA GPU" in capsys.readouterr().out


def test_axolotl_missing_names_the_wheelhouse(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    monkeypatch.setattr(gpu_run, "NEEDED_MODULES", ("axolotl_grpo_no_such_module",))
    monkeypatch.setattr(cli, "build_model", lambda *a, **k: pytest.fail("no model is built when nothing can run"))
    assert cli.main(["--out", str(tmp_path), "--cases", "full"]) == 1
    (case,) = read_report(tmp_path)["cases"]
    assert "axolotl_grpo_no_such_module" in case["skipped"] and "scripts/gpu-wheels.sh" in case["skipped"]


@pytest.fixture
def gpu_without_runs(monkeypatch, tmp_path):
    """A fake GPU where the model build, the planner and the training run are stand-ins."""
    monkeypatch.setattr(cli, "why_nothing_runs", lambda gpu, emulate: None)
    monkeypatch.setattr(cli, "build_model", lambda out, tiny: out)
    monkeypatch.setattr(gpu_run, "run_plan", lambda config, gpu, out: {"planned_peak_gib": 30.0, "prompt_tokens": 69})
    return tmp_path


def test_a_case_the_card_cannot_hold_is_skipped_before_it_runs(gpu_without_runs, monkeypatch):
    monkeypatch.setattr(cli, "read_gpu", lambda: fake_gpu(free_gib=20.0))
    monkeypatch.setattr(gpu_run, "run_train", lambda *a, **k: pytest.fail("a case over the card's memory ran"))
    cli.main(["--out", str(gpu_without_runs), "--cases", "full"])
    (case,) = read_report(gpu_without_runs)["cases"]
    assert case["skipped"] == "too little GPU memory: the planner says 30.0 GiB, 20.0 GiB is free"


def test_out_of_memory_keeps_what_was_measured(gpu_without_runs, monkeypatch):
    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    oom = TrainRun(returncode=1, seconds=50.0, steps=[step(1, 70.0, 75.0, 100, step=9.0)], log=Path("x"),
                   oom="torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 9 GiB")
    monkeypatch.setattr(gpu_run, "run_train", lambda *a, **k: oom)
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "full"]) == 1
    (case,) = read_report(gpu_without_runs)["cases"]
    assert case["skipped"].startswith("out of memory after 1 step(s): torch.OutOfMemoryError")
    assert case["measured_peak_gib"] == 75.0 and case["ratio"] == 2.5


def test_a_measured_case_gets_its_ratio_and_the_table_row(gpu_without_runs, monkeypatch, capsys):
    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    run = TrainRun(returncode=0, seconds=90.0, log=Path("x"), smi_peak_gib=33.0,
                   steps=[step(1, 24.0, 25.0, 1000, step=30.0), step(2, 30.6, 31.8, 9000, step=11.0),
                          step(3, 30.6, 32.0, 17000, step=11.0)])
    monkeypatch.setattr(gpu_run, "run_train", lambda *a, **k: run)
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "full"]) == 0
    (case,) = read_report(gpu_without_runs)["cases"]
    assert "skipped" not in case and case["measured_peak_gib"] == 32.0 and case["ratio"] == round(32 / 30, 3)
    assert case["tokens_per_s"] == round(16000 / 22, 1) and case["smi_peak_gib"] == 33.0
    assert "full                    32.00       30.00   1.07       727" in capsys.readouterr().out


def test_case_configs_are_gsm8k_yaml_trainers_without_vllm():
    full, lora, half, tools = (config(c, "M", Path("/o") / c.name, steps=3, on_gpu=True) for c in GPU_CASES)
    assert full["trl"]["use_vllm"] is False and full["bf16"] is True and full["gradient_checkpointing"]
    assert (full["micro_batch_size"], full["trl"]["num_generations"], full["trl"]["max_completion_length"]) == (16, 16, 512)
    assert lora["adapter"] == "lora" and "adapter" not in full
    assert (half["micro_batch_size"], half["trl"]["max_completion_length"]) == (8, 256)
    assert "grpo_plugin" not in full and full["chat_template"] == "tokenizer_default"
    assert tools["grpo_plugin"]["tools"] == ["calculator"] and tools["chat_template"] == "qwen_25"
    assert tools["trl"]["max_completion_length"] == 768 and tools["trl"]["use_vllm"] is False
    cpu = config(GPU_CASES[0], "M", Path("/o"), steps=2, on_gpu=False)
    assert cpu["bf16"] is False and "attn_implementation" not in cpu


class FakeCuda:
    def __init__(self, fail=False):
        self.resets, self.fail = 0, fail

    def reset_peak_memory_stats(self):
        if self.fail:
            raise RuntimeError("driver gone")
        self.resets += 1

    def max_memory_allocated(self):
        return 3 * gpu_memory.GIB

    def max_memory_reserved(self):
        return 4 * gpu_memory.GIB


def test_each_step_logs_its_own_peak():
    from collections import defaultdict

    trainer = SimpleNamespace(_metrics={"train": defaultdict(list)})
    cuda = FakeCuda()
    callback = gpu_memory.make_callback(trainer, cuda)
    for _ in range(2):
        callback.on_step_begin(None, None, None)
        callback.on_step_end(None, None, None)
    assert cuda.resets == 2
    assert trainer._metrics["train"][gpu_memory.ALLOCATED] == [3.0, 3.0]
    assert trainer._metrics["train"][gpu_memory.RESERVED] == [4.0, 4.0]


def test_a_failing_reading_is_reported_once_and_never_stops_training(caplog):
    from collections import defaultdict

    trainer = SimpleNamespace(_metrics={"train": defaultdict(list)})
    callback = gpu_memory.make_callback(trainer, FakeCuda(fail=True))
    for _ in range(3):
        callback.on_step_begin(None, None, None)
        callback.on_step_end(None, None, None)
    assert [r.message for r in caplog.records].count(
        "axolotl_grpo_plugin: logging the peak GPU memory failed (RuntimeError: driver gone); it is off for "
        "the rest of the run.") == 1
    assert gpu_memory.ALLOCATED not in trainer._metrics["train"]


def test_nothing_is_attached_without_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    trainer = SimpleNamespace(add_callback=lambda cb: pytest.fail("a callback was added without CUDA"))
    assert gpu_memory.attach(trainer) is False


def make_wheel(path: Path) -> Path:
    files = {"pkg/__init__.py": "", "pkg/libbig_cuda118.so": "x" * 1000, "pkg/libbig_cuda130.so": "y"}
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        record = "".join(f"{name},sha256=abc,{len(text)}\n" for name, text in files.items())
        wheel.writestr("pkg-1.0.dist-info/RECORD", record + "pkg-1.0.dist-info/RECORD,,\n")
    return path


def run_slim(*args):
    return subprocess.run([sys.executable, str(REPO / "scripts/gpu/slim_wheel.py"), *args],
                          capture_output=True, text=True)


def test_a_checkout_on_pythonpath_records_its_commit(monkeypatch):
    """scripts/gpu-check.sh runs the carried tree uninstalled: the JSON must still say which code ran."""
    real_version = machine.version

    def not_installed(name):
        if name == "axolotl-grpo-plugin":
            raise machine.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(machine, "version", not_installed)
    found = machine.versions("0.1.0")["axolotl-grpo-plugin"]
    assert found.startswith("0.") and "checkout" in found
    if (REPO / ".git").exists():
        head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, check=True).stdout.strip()
        assert found.endswith(f"(checkout {head})")


def test_slimming_drops_the_files_and_their_record_lines(tmp_path):
    wheel = make_wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    done = run_slim(str(wheel), "pkg/libbig_cuda1[12]*.so")
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(wheel) as slim:
        assert sorted(slim.namelist()) == ["pkg-1.0.dist-info/RECORD", "pkg/__init__.py", "pkg/libbig_cuda130.so"]
        record = slim.read("pkg-1.0.dist-info/RECORD").decode()
    assert "cuda118" not in record and "pkg/libbig_cuda130.so" in record and "RECORD,," in record


def test_a_glob_that_matches_nothing_is_an_error(tmp_path):
    wheel = make_wheel(tmp_path / "pkg-1.0-py3-none-any.whl")
    done = run_slim(str(wheel), "pkg/nothing*")
    assert done.returncode == 1 and "no file matches" in done.stderr and "# drop:" in done.stderr


needs_image_venv = pytest.mark.skipif(
    not any(IMAGE_VENV.glob(".installed-*")),
    reason=f"the image-like venv is absent ({IMAGE_VENV}); `bash scripts/gpu-check.sh --emulate` builds it")


@needs_image_venv
@pytest.mark.skipif(not IMAGE_LIST.exists(), reason="../shared/gpu/image-packages.txt is absent")
def test_the_image_like_venv_holds_only_what_the_image_has():
    listed = {line.strip().lower().replace("_", "-") for line in IMAGE_LIST.read_text().splitlines()
              if line.strip() and not line.startswith("#")}
    frozen = subprocess.run([str(IMAGE_VENV / "bin/python"), "-m", "pip", "list", "--format=freeze"],
                            capture_output=True, text=True, check=True).stdout
    installed = {line.split("==")[0].lower().replace("_", "-") for line in frozen.splitlines() if "==" in line}
    assert installed - listed == set(), "the emulation has packages the GPU machine's image lacks"


@needs_image_venv
def test_the_kit_runs_end_to_end_on_cpu(tmp_path):
    """scripts/gpu-check.sh --emulate: the wheelhouse into the image-like venv, `axolotl train` with
    the plugin, `axolotl-grpo plan`, the JSON with its GPU-only figures null."""
    started = time.monotonic()
    done = subprocess.run(["bash", "scripts/gpu-check.sh", "--emulate", "--out", str(tmp_path), "--cases", "lora",
                           "--steps", "2"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = read_report(tmp_path)
    assert report["emulated"] and report["versions"]["axolotl"] == "0.19.0" and report["versions"]["torch"] == "2.11.0"
    (case,) = report["cases"]
    assert "skipped" not in case and case["steps"] == 2 and case["measured_peak_gib"] is None
    assert case["planned_peak_gib"] > 0 and case["tokens_per_s"] > 0 and case["step_parts"]["generation"] > 0
    assert time.monotonic() - started < 600


def test_a_run_stopped_while_exiting_after_its_last_step_is_measured(gpu_without_runs, monkeypatch):
    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    run = TrainRun(returncode=None, seconds=80.0, log=Path("x"),
                   steps=[step(n, 15.0, 18.0, 1000 * n, step=6.0) for n in (1, 2, 3)])
    monkeypatch.setattr(gpu_run, "run_train", lambda *a, **k: run)
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "full", "--steps", "3"]) == 0
    (case,) = read_report(gpu_without_runs)["cases"]
    assert "skipped" not in case and "after its last step" in case["note"] and case["measured_peak_gib"] == 18.0
    run.steps = run.steps[:2]
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "full", "--steps", "3"]) == 1
    assert read_report(gpu_without_runs)["cases"][0]["skipped"].startswith("stopped at the time budget")


@pytest.mark.parametrize("where, why", [("file", "is a file, not a folder"),
                                        ("file/gc", "{tmp}/file is a file, not a folder")])
def test_an_out_that_cannot_be_a_folder_is_refused_before_any_work(tmp_path, capsys, monkeypatch, where, why):
    """`--out A_FILE` once ran the work, then ended in a FileExistsError traceback."""
    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(cli, "read_gpu", lambda: pytest.fail("work started before --out was checked"))
    out = str(tmp_path / where)
    assert cli.main(["--out", out]) == 2
    assert capsys.readouterr().err.strip() == (f"error: --out = {out!r}: {why.format(tmp=tmp_path)}. "
                                               "Fix: pass a writable folder with --out DIR")


@pytest.mark.parametrize("argv, needle", [(["--steps", "0"], "argument --steps: '0' must be at least 1"),
                                          (["--steps", "-1"], "argument --steps: '-1' must be at least 1"),
                                          (["--budget-s", "-5"], "argument --budget-s: '-5' must be a number above 0"),
                                          (["--budget-s", "nan"], "argument --budget-s: 'nan' must be a number above 0")])
def test_steps_and_budget_must_be_positive(capsys, argv, needle):
    with pytest.raises(SystemExit) as exit_:
        cli.parser().parse_args(argv)
    assert exit_.value.code == 2 and needle in capsys.readouterr().err


def test_cases_run_in_the_order_given_and_an_unknown_name_is_refused(gpu_without_runs, monkeypatch, capsys):
    """`--cases tools full-half-batch lora` (the last check's skipped cases first) ran lora first."""
    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    ran = []
    run = TrainRun(returncode=0, seconds=9.0, log=Path("x"), steps=[step(n, 15.0, 18.0, 1000 * n, step=6.0) for n in (1, 2)])
    monkeypatch.setattr(gpu_run, "run_train", lambda config, *a, **k: ran.append(config.parent.name) or run)
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "tools", "full-half-batch", "lora", "--steps", "2"]) == 0
    assert ran == ["tools", "full-half-batch", "lora"]
    assert [c["name"] for c in read_report(gpu_without_runs)["cases"]] == ran
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "tools", "ful", "lora2"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --cases ful lora2: no such cases; the cases are "
                                               "full, lora, full-half-batch, tools")


def test_sigterm_stops_the_running_case_keeps_its_steps_and_skips_the_rest(gpu_without_runs, monkeypatch):
    """`timeout 290 bash scripts/gpu-check.sh --cases tools` once ended with nothing written: the
    case outlived the outer timeout and its measured steps were lost with the process."""
    import signal
    import threading

    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    row = "{'loss': '0', 'reward': '1.0', 'num_tokens': '100', 'memory/peak_allocated_gib': '40.1', 'memory/peak_reserved_gib': '43.3', 'time/step': '21'}"
    script = f"import time\nprint({row!r}, flush=True)\ntime.sleep(600)\n"
    monkeypatch.setattr(measure, "train_command", lambda config: [sys.executable, "-c", script])
    monkeypatch.setattr(measure, "STOP_GRACE_S", 2)

    def terminate_after_the_first_step():
        log = gpu_without_runs / "tools" / "train.log"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (log.is_file() and "peak_reserved" in log.read_text()):
            time.sleep(0.1)
        os.kill(os.getpid(), signal.SIGTERM)

    before = signal.getsignal(signal.SIGTERM)  # another test in this worker may have left its own
    threading.Thread(target=terminate_after_the_first_step, daemon=True).start()
    started = time.monotonic()
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "tools", "full"]) == 128 + signal.SIGTERM
    assert time.monotonic() - started < 60
    tools, full = read_report(gpu_without_runs)["cases"]
    assert tools["stopped_by"] == "SIGTERM" and tools["steps"] == 1 and tools["measured_peak_gib"] == 43.3
    assert tools["skipped"] == "the check was stopped (SIGTERM) after 1 step(s); what they measured is kept"
    assert full["skipped"] == "the check was stopped (SIGTERM) before this case"
    assert signal.getsignal(signal.SIGTERM) == before  # handed back


@pytest.mark.parametrize("started, spent", [("{now_minus_40}", 40.0), ("", 0.0), ("soon", 0.0), ("{future}", 0.0)])
def test_the_budget_counts_from_the_scripts_start(monkeypatch, started, spent):
    """The second call of the seventh GPU run: `--budget-s 270` under `timeout 290`, and the ~25 s
    wheelhouse install outside the budget let the outer timeout fire first."""
    now = time.time()
    monkeypatch.setenv("GPU_CHECK_STARTED", started.format(now_minus_40=now - 40, future=now + 500))
    assert cli.already_spent_s() == pytest.approx(spent, abs=1.0)


def test_a_budget_spent_before_the_check_started_skips_the_cases(gpu_without_runs, monkeypatch):
    monkeypatch.setattr(cli, "read_gpu", fake_gpu)
    monkeypatch.setattr(gpu_run, "run_train", lambda *a, **k: pytest.fail("a case ran past the budget"))
    monkeypatch.setenv("GPU_CHECK_STARTED", str(time.time() - 300))
    assert cli.main(["--out", str(gpu_without_runs), "--cases", "full", "--budget-s", "330"]) == 1
    (case,) = read_report(gpu_without_runs)["cases"]
    left = int(case["skipped"].removeprefix("time budget: ").split()[0])
    assert 15 <= left <= 30 and "of --budget-s 330 left, a case needs 60" in case["skipped"]
