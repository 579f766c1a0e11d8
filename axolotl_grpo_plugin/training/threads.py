"""Torch threads on a run without a GPU: every core this process may use, unless the user chose.

Why: `axolotl train` runs `accelerate launch`, which writes OMP_NUM_THREADS into the trainer's
environment whatever happens: the caller's value when there is one, else 1 (accelerate's
commands/launch.py, `num_cpu_threads_per_process`; utils/launch.py). torchrun writes 1 for
several processes per node. So on a CPU the trainer computes on one core of many unless the
user exported the variable (an SFT step of SmolLM2-135M: 15.9 s instead of 8.4 s on 2 cores).

A value in our environment is the user's when no launcher stood between us and the user, or when
the launcher's own environment (our parent's, /proc/PPID/environ: what the user handed to
`accelerate launch`) held it too, or when the launcher was given `--num_cpu_threads_per_process`.
Otherwise the launcher wrote it, and we take every core of our CPU affinity, shared among this
node's training processes. The count also goes into OMP_NUM_THREADS, so what this process starts
(the autostarted vLLM server on vLLM's CPU build) inherits it instead of the launcher's 1.

`choose` decides (pure: environments and counts in, the count and one line out); `configure`
acts on the decision."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


ENV = "OMP_NUM_THREADS"
# Written by accelerate launch (every launch) and torchrun (every rank) for the processes they start.
LAUNCHER_MARKS = ("ACCELERATE_MIXED_PRECISION", "TORCHELASTIC_RUN_ID")
LAUNCHER_OPTION = "num_cpu_threads_per_process"  # accelerate launch's own way to say it


@dataclass(frozen=True)
class Choice:
    threads: int | None  # None: leave torch as it is (the user's value)
    line: str  # the one line the run prints


def _launcher_option(args: Sequence[str]) -> bool:
    return any(a.lstrip("-").split("=", 1)[0].replace("-", "_") == LAUNCHER_OPTION
               for a in args if a.startswith("--"))


def choose(env: Mapping[str, str], cores: int, processes: int = 1,
           launcher_env: Mapping[str, str] | None = None, launcher_args: Sequence[str] | None = None) -> Choice:
    """The torch thread count for a training process without a GPU. `env` is ours, `cores` the
    cores our affinity allows, `processes` the training processes on this node; `launcher_env` and
    `launcher_args` are our parent's environment and command line (None: unknown)."""
    value = (env.get(ENV) or "").strip()
    launched = any(mark in env for mark in LAUNCHER_MARKS)
    if value:
        if not launched:
            return Choice(None, f"torch threads: {value}, from your {ENV}")
        if launcher_env is not None and (launcher_env.get(ENV) or "").strip():
            return Choice(None, f"torch threads: {value}, from your {ENV}")
        if launcher_args is not None and _launcher_option(launcher_args):
            return Choice(None, f"torch threads: {value}, from your --{LAUNCHER_OPTION}")
        if launcher_env is None and value != "1":  # unknown origin: only accelerate's default is replaced
            return Choice(None, f"torch threads: {value}, from {ENV}")
    threads = max(1, cores // max(1, processes))
    share = f", shared by {processes} training processes" if processes > 1 else ""
    origin = f"{ENV}={value} was the launcher's default, not yours" if value else f"{ENV} is not set"
    return Choice(threads, f"torch threads: {threads}, the {cores} cores this process may use{share} "
                           f"({origin}; export {ENV} to choose)")


def _parent_environ(pid: int) -> dict[str, str] | None:
    try:
        raw = open(f"/proc/{pid}/environ", "rb").read()  # noqa: SIM115 - one read
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}


def _parent_args(pid: int) -> list[str] | None:
    try:
        raw = open(f"/proc/{pid}/cmdline", "rb").read()  # noqa: SIM115 - one read
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


_chosen: Choice | None = None  # once per process (a config may list both of our plugins)


def configure(log, env: dict[str, str] | None = None) -> Choice:
    """Set torch's thread count (and OMP_NUM_THREADS for our children) in a training process
    without a GPU; log the one line on the node's first process."""
    global _chosen
    if _chosen is not None:
        return _chosen
    import torch

    from ..system.launch import available_cores, local_processes, local_rank

    env = os.environ if env is None else env
    parent = os.getppid()
    choice = choose(env, available_cores(), local_processes(env), _parent_environ(parent), _parent_args(parent))
    if choice.threads is not None:
        torch.set_num_threads(choice.threads)
        env[ENV] = str(choice.threads)
    if local_rank(env) == 0:
        log.info(choice.line)
    _chosen = choice
    return choice
