"""Make the plain `axolotl train CONFIG` work when a GPU is reserved for vLLM.

Why: `axolotl train` execs `accelerate launch -m axolotl.cli.train CONFIG`, and without
an accelerate config accelerate starts one process per visible GPU before any plugin
code runs, so on a 2-GPU machine LOCAL_RANK 1 lands on vLLM's GPU. The plugin's
`register` is the first code of ours in those processes and nothing before it talks to
the other ranks (docs/vllm.md, "The automatic relaunch"), so it can still fix the
launch: every rank but LOCAL_RANK 0 exits 0, and LOCAL_RANK 0 execs
`accelerate launch --num_processes N ... -m axolotl.cli.train CONFIG ...` with one
process per free GPU. The exec keeps its PID, so the outer launcher keeps waiting on it
and reports its exit status.

`decide_relaunch` decides (pure: config, environment and command lines in, the command
and environment out); `relaunch_if_needed` acts on the decision.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.gpus import GpuLayout, GpuLayoutError, check_launch, launcher_args, visible_gpus
from ..config.run import Run
from ..system.launch import DISTRIBUTED_ENV, RELAUNCHED_ENV, cuda_gpu_count, local_processes, local_rank
from .autostart import LOG, autostart_problems


TRAIN_MODULE = "axolotl.cli.train"
# Every `accelerate launch` launcher (simple, multi-GPU, DeepSpeed, TPU) sets it for its
# processes; torchrun and `--launcher python` do not, and are left alone.
ACCELERATE_LAUNCH_MARK = "ACCELERATE_MIXED_PRECISION"
# What accelerate 1.13's and 1.15's launchers (accelerate/utils/launch.py; Axolotl 0.19, 0.21) and torch elastic write for
# the processes they start (with DISTRIBUTED_ENV); the new launch writes its own. A user's
# other ACCELERATE_* settings stay.
OUTER_LAUNCH_ENV = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DEBUG_MODE", "ACCELERATE_CPU_AFFINITY",
                         "ACCELERATE_CONFIG_DS_FIELDS", "ACCELERATE_GRADIENT_ACCUMULATION_STEPS",
                         "ACCELERATE_GRADIENT_CLIPPING")
OUTER_LAUNCH_PREFIXES = ("ACCELERATE_USE_", "ACCELERATE_DYNAMO_", "ACCELERATE_DEEPSPEED_", "ACCELERATE_FP8_",
                         "TORCHELASTIC_")
# Launcher options the relaunch sets itself; the user's other launcher options are kept.
REPLACED_OPTIONS = ("num_processes", "gpu_ids", "main_process_port")
REPLACED_FLAGS = ("multi_gpu",)


@dataclass(frozen=True)
class Relaunch:
    """The launch to exec instead of this one."""

    outer_processes: int
    layout: GpuLayout
    launch_args: tuple[str, ...]  # between `accelerate launch` and `-m axolotl.cli.train`
    script_args: tuple[str, ...]  # the config and CLI overrides, as this process got them
    env: Mapping[str, str]
    python: str = sys.executable

    @property
    def argv(self) -> list[str]:
        """`accelerate launch` through this interpreter: no PATH lookup, same environment."""
        return [self.python, "-m", "accelerate.commands.launch", *self.launch_args, "-m", TRAIN_MODULE,
                *self.script_args]

    @property
    def shown(self) -> str:
        return "accelerate launch " + shlex.join([*self.launch_args, "-m", TRAIN_MODULE, *self.script_args])

    def message(self) -> str:
        reserved = ",".join(self.layout.server)
        verb = "is" if len(self.layout.server) == 1 else "are"
        return (f"accelerate started {self.outer_processes} training processes but GPU {reserved} {verb} "
                f"reserved for vLLM: relaunching as `{self.shown}` "
                f"(set `grpo_plugin.vllm_relaunch: false` to get an error instead)")


def decide_relaunch(run: Run, env: Mapping[str, str], gpu_count: Callable[[], int],
                    script_args: Sequence[str], main_module: str | None, outer_args: Sequence[str] = (),
                    accelerate_config: bool = False, free_port: Callable[[], int] | None = None,
                    python: str = sys.executable) -> Relaunch | None:
    """The relaunch this process should do, or None: no relaunch (the launch fits, or the
    normal checks in `autostart.on_register` will refuse it with the manual fix).

    `outer_args`: the launcher arguments the user gave the outer `accelerate launch`;
    `accelerate_config`: whether accelerate reads a config file (then it, not
    `--multi_gpu`, picks the distributed type).
    """
    if not may_relaunch(env, main_module):
        return None
    if not (run.plugin.vllm_autostart and run.plugin.vllm_relaunch) or autostart_problems(run):
        return None
    local = local_processes(env)
    if int(env.get("WORLD_SIZE") or 1) > local:
        return None  # several nodes: one node cannot relaunch the others
    visible = visible_gpus(env, gpu_count)
    try:
        layout = run.gpu_layout(visible)
        check_launch(layout, visible, local, "CONFIG")
        return None
    except GpuLayoutError as exc:
        if exc.key != "launch":
            return None  # too few GPUs or a bad reservation: no launch can fix that
    # One process per free GPU; fewer if the user launched fewer on purpose.
    processes = min(local, len(layout.trainer))
    trainers = GpuLayout(server=layout.server, trainer=layout.trainer[:processes])
    kept, had_multi_gpu = strip_options(outer_args)
    args = launcher_args(trainers, visible)
    if processes > 1:
        # The outer launcher still holds MASTER_PORT for its own rendezvous.
        args += ["--main_process_port", str((free_port or find_free_port)())]
        if had_multi_gpu or not (accelerate_config or has_option(kept, "config_file")):
            args.insert(0, "--multi_gpu")
    # --quiet: a failing single process has printed its error; no second traceback from accelerate.
    args += [*kept, "--quiet"]
    return Relaunch(outer_processes=local, layout=layout, launch_args=tuple(args),
                    script_args=tuple(script_args), env=relaunch_env(env), python=python)


def may_relaunch(env: Mapping[str, str], main_module: str | None) -> bool:
    """An accelerate-launched training process that is not itself a relaunch."""
    return main_module == TRAIN_MODULE and ACCELERATE_LAUNCH_MARK in env and env.get(RELAUNCHED_ENV) != "1"


def relaunch_env(env: Mapping[str, str]) -> dict[str, str]:
    """This process's environment minus what the outer launch set for it, plus the marker
    that turns a second mismatch into the normal error instead of a loop."""
    out = {k: v for k, v in env.items()
           if k not in DISTRIBUTED_ENV and k not in OUTER_LAUNCH_ENV and not k.startswith(OUTER_LAUNCH_PREFIXES)}
    out[RELAUNCHED_ENV] = "1"
    return out


def _option_name(token: str) -> str:
    return token[2:].split("=", 1)[0].replace("-", "_") if token.startswith("--") else ""


def has_option(args: Sequence[str], name: str) -> bool:
    return any(_option_name(token) == name for token in args)


def strip_options(args: Sequence[str]) -> tuple[list[str], bool]:
    """The launcher arguments without the ones the relaunch sets (`--opt value`,
    `--opt=value`, dashes or underscores); and whether `--multi_gpu` was among them."""
    kept: list[str] = []
    had_multi_gpu, skip_value = False, False
    for token in args:
        if skip_value:
            skip_value = False
            continue
        name = _option_name(token)
        if name in REPLACED_FLAGS:
            had_multi_gpu = True
        elif name in REPLACED_OPTIONS:
            skip_value = "=" not in token
        else:
            kept.append(token)
    return kept, had_multi_gpu


def outer_launcher_args(cmdline: Sequence[str] | None) -> list[str]:
    """From the outer launcher's command line, `... accelerate launch ARGS -m
    axolotl.cli.train CONFIG ...`, the ARGS; [] when it is not that (or unreadable)."""
    cmdline = list(cmdline or [])
    if TRAIN_MODULE not in cmdline:
        return []
    end = cmdline.index(TRAIN_MODULE)
    starts = [i + 1 for i, token in enumerate(cmdline[:end])
              if token == "launch" or token.endswith("accelerate.commands.launch")]
    if not starts:
        return []
    args = cmdline[starts[0]:end]
    return args[:-1] if args and args[-1] in ("-m", "--module") else args


def parent_cmdline(pid: int | None = None) -> list[str] | None:
    """The command line of the process that started this one (Linux /proc), or None."""
    try:
        raw = Path(f"/proc/{pid or os.getppid()}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def accelerate_reads_a_config() -> bool:
    """Whether `accelerate launch` would load its default config file (`accelerate config`)."""
    try:
        from accelerate.commands.config.config_args import default_config_file
    except ImportError:
        return False
    return os.path.isfile(default_config_file)


def find_free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _main_module() -> str | None:
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return getattr(spec, "name", None)


def _flush() -> None:
    """Nothing logged so far may be lost to the exit or the exec."""
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()


def relaunch_if_needed(run: Run, env: Mapping[str, str] = os.environ,
                       gpu_count: Callable[[], int] | None = None, argv: Sequence[str] | None = None,
                       main_module: str | None = None, outer_cmdline: Sequence[str] | None = None,
                       accelerate_config: bool | None = None,
                       execvpe: Callable[[str, list[str], Mapping[str, str]], Any] | None = None) -> None:
    """On a launch that puts a trainer on a reserved GPU: exit 0 on LOCAL_RANK > 0, exec the
    right launch on LOCAL_RANK 0. Returns when there is nothing to relaunch."""
    main_module = _main_module() if main_module is None else main_module
    if not may_relaunch(env, main_module):
        return  # before reading /proc or accelerate's config: register runs in every command
    decision = decide_relaunch(
        run, env, gpu_count or cuda_gpu_count, (sys.argv if argv is None else argv)[1:],
        main_module=main_module,
        outer_args=outer_launcher_args(parent_cmdline() if outer_cmdline is None else outer_cmdline),
        accelerate_config=accelerate_reads_a_config() if accelerate_config is None else accelerate_config,
    )
    if decision is None:
        return
    if local_rank(env) != 0:
        _flush()
        raise SystemExit(0)  # LOCAL_RANK 0 relaunches the whole launch
    LOG.info(decision.message())
    _flush()
    argv = decision.argv
    try:
        (execvpe or os.execvpe)(argv[0], argv, decision.env)
    except OSError as exc:
        raise SystemExit(f"\naxolotl-grpo-plugin could not relaunch as `{decision.shown}`: {exc}\n"
                         f"  fix: run it yourself: `{decision.shown}`\n") from None
