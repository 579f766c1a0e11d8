"""One training run per output_dir: a second run there is refused before it trains.

Two runs in one output_dir overwrite each other's checkpoints and race on the rollout
log's rotation (half the rollouts were lost in a test). The main training process holds
an exclusive `flock` on OUTPUT_DIR/.grpo_plugin.lock for its whole life; the kernel drops
it when the process ends, however it ends, so a crashed run never leaves a stale lock.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from pathlib import Path
from typing import IO

from ..errors import PluginError, Problem
from ..system.safe_files import UnsafePathError, open_nofollow


LOG = logging.getLogger("axolotl_grpo_plugin")
LOCK_NAME = ".grpo_plugin.lock"
_HELD: dict[str, IO] = {}  # realpath of output_dir -> the open lock file (kept for the process life)


class OutputDirInUse(PluginError):
    """Another live process holds the output_dir's lock (or a link was planted at it)."""

    style = "block"
    noun = "problem"


def in_use(output_dir: str | os.PathLike, holder: str) -> OutputDirInUse:
    return OutputDirInUse([Problem(
        "output_dir", str(output_dir),
        f"another training run is using this directory ({holder}); two runs in one output_dir "
        "overwrite each other's checkpoints and rollout log",
        "give this run its own `output_dir`, or wait until that run ends",
    )])


def holder(output_dir: str | os.PathLike) -> str | None:
    """Who holds the output_dir's lock right now (the line it wrote), without taking it: None
    when the directory is free, has no lock file, or cannot be asked (no flock, a link)."""
    path = Path(output_dir) / LOCK_NAME
    if path.is_symlink() or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    with os.fdopen(fd, encoding="utf-8", errors="replace") as handle:
        try:  # a shared lock conflicts only with a run's exclusive one
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return handle.read(200).strip() or "another process"
        except OSError:
            return None
    return None  # closing the descriptor dropped the shared lock


def hold(output_dir: str | os.PathLike) -> Path | None:
    """Take the output_dir's lock for the rest of this process, or raise OutputDirInUse (held
    by a live process, or a symlink planted at the lock file). Taking it again in the same
    process is a no-op. Where locking is impossible (read-only, no flock), warn and go on: None."""
    directory = Path(output_dir)
    key = os.path.realpath(directory)
    path = directory / LOCK_NAME
    if key in _HELD:
        return path
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = open_nofollow(path, "a+", encoding="utf-8")
    except UnsafePathError as exc:
        raise OutputDirInUse([Problem(
            "output_dir", str(output_dir), f"{exc}: the plugin does not write through links there",
            f"remove {path} (a regular file is created in its place)")]) from None
    except OSError as exc:  # read-only or unwritable: the trainer's own saves will say more
        LOG.warning("axolotl_grpo_plugin: cannot lock output_dir %s (%s); a second run there "
                    "would not be refused.", directory, exc)
        return None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read(200).strip() or "another process"
        handle.close()
        raise in_use(output_dir, holder) from None
    except OSError as exc:  # a filesystem without flock (some NFS setups): ENOLCK
        handle.close()
        LOG.warning("axolotl_grpo_plugin: output_dir %s cannot be locked (%s); a second run "
                    "there would not be refused.", directory, exc)
        return None
    except BaseException:
        handle.close()
        raise
    os.ftruncate(handle.fileno(), 0)
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}\n")
    handle.flush()
    _HELD[key] = handle
    return path


def release(output_dir: str | os.PathLike) -> None:
    """Let go early (tests; a process that trains twice). The file stays: removing it would race."""
    handle = _HELD.pop(os.path.realpath(Path(output_dir)), None)
    if handle is not None:
        handle.close()  # closing the only descriptor drops the flock
