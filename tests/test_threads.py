"""Torch threads of a training process without a GPU (training/threads.py): the user's OMP_NUM_THREADS is
kept, a launcher's 1 is replaced by the cores this process may use."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from axolotl_grpo_plugin.training.threads import choose


ACCELERATE = {"ACCELERATE_MIXED_PRECISION": "no", "OMP_NUM_THREADS": "1"}


def test_accelerates_one_is_replaced_by_every_core():
    choice = choose(ACCELERATE, cores=8, launcher_env={"PATH": "/bin"}, launcher_args=["accelerate", "launch"])
    assert choice.threads == 8
    assert choice.line.startswith("torch threads: 8, the 8 cores") and "launcher's default" in choice.line


def test_the_users_value_is_kept_even_when_it_is_one():
    for value in ("1", "3"):
        env = {**ACCELERATE, "OMP_NUM_THREADS": value}
        choice = choose(env, cores=8, launcher_env={"OMP_NUM_THREADS": value}, launcher_args=[])
        assert choice.threads is None and choice.line == f"torch threads: {value}, from your OMP_NUM_THREADS"


def test_accelerates_num_cpu_threads_per_process_is_the_users_choice():
    for option in (["--num_cpu_threads_per_process", "1"], ["--num-cpu-threads-per-process=1"]):
        choice = choose(ACCELERATE, cores=8, launcher_env={}, launcher_args=["accelerate", "launch", *option])
        assert choice.threads is None and "--num_cpu_threads_per_process" in choice.line


def test_without_a_launcher_the_variable_is_the_users():
    choice = choose({"OMP_NUM_THREADS": "1"}, cores=8)  # `axolotl train --launcher python`
    assert choice.threads is None
    assert choose({}, cores=8).threads == 8  # nothing set anywhere: every core


def test_affinity_and_processes_per_node_are_respected():
    assert choose(ACCELERATE, cores=3, launcher_env={}).threads == 3  # taskset -c 0-2 on a larger machine
    shared = choose({**ACCELERATE, "TORCHELASTIC_RUN_ID": "x"}, cores=8, processes=3, launcher_env={})
    assert shared.threads == 2 and "shared by 3 training processes" in shared.line
    assert choose(ACCELERATE, cores=2, processes=4, launcher_env={}).threads == 1


def test_unknown_launcher_environment_replaces_only_accelerates_default():
    assert choose(ACCELERATE, cores=4).threads == 4
    assert choose({**ACCELERATE, "OMP_NUM_THREADS": "2"}, cores=4).threads is None


@pytest.mark.skipif(not os.path.exists("/proc/self/environ") or not hasattr(os, "sched_getaffinity")
                    or len(os.sched_getaffinity(0)) < 2, reason="needs Linux /proc and 2 cores")
@pytest.mark.parametrize("user", [None, "1"])
def test_a_real_launcher_child_gets_every_core_unless_the_user_chose(user, tmp_path):
    """A parent that writes OMP_NUM_THREADS=1 into its child's environment, as accelerate launch does;
    the child reads its parent's /proc environ, configures torch and reports its thread count."""
    child = ("import logging, torch; from axolotl_grpo_plugin.training import threads; "
             "log = logging.getLogger('t'); logging.basicConfig(level=logging.INFO, format='%(message)s'); "
             "threads.configure(log); print('threads', torch.get_num_threads())")
    launcher = ("import os, subprocess, sys; "
                "env = {**os.environ, 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1'), "
                "'ACCELERATE_MIXED_PRECISION': 'no'}; "
                f"sys.exit(subprocess.run([sys.executable, '-c', {child!r}], env=env).returncode)")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    if user:
        env["OMP_NUM_THREADS"] = user
    out = subprocess.run(["taskset", "-c", "0,1", sys.executable, "-c", launcher], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    want = user or "2"
    assert f"threads {want}" in out.stdout, out.stdout + out.stderr
    assert sum(line.startswith("torch threads:") for line in out.stderr.splitlines()) == 1, out.stderr


@pytest.mark.integration
@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_axolotl_train_of_an_sft_config_with_the_threads_plugin_uses_every_core(embedded_model_dir, tmp_path):
    """A real `axolotl train` (accelerate launch, which writes OMP_NUM_THREADS=1): one SFT step of the
    embedded model with `plugins: [axolotl_grpo_plugin.CPUThreadsPlugin]`, one line, every core."""
    import shutil

    import yaml
    from conftest import cold_start_sft_config, subprocess_env

    cfg = cold_start_sft_config(embedded_model_dir, tmp_path)
    path = tmp_path / "sft.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = {k: v for k, v in subprocess_env().items() if k != "OMP_NUM_THREADS"}
    axolotl = shutil.which("axolotl", path=env["PATH"])
    proc = subprocess.run(["taskset", "-c", "0,1", axolotl, "train", str(path)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    lines = [line for line in out.splitlines() if "torch threads:" in line]
    assert len(lines) == 1 and "torch threads: 2, the 2 cores" in lines[0], lines or out[-3000:]
