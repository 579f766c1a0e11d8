"""Writes that never follow a symlink planted where the plugin writes (output_dir is often shared).

Two ways to write, and every file the plugin writes goes through one of them:

- `replacing(path)` / `write_atomic(path, data)`: the content goes to a fresh temp file
  (`tempfile.mkstemp`: O_CREAT|O_EXCL, never an existing file or link) in the same directory,
  then `os.replace` moves it over `path`. A symlink at `path` is replaced, not followed. On any
  failure the temp file is removed and `path` is untouched.
- `open_nofollow(path, mode)`: append to or truncate a file in place (the live rollout log, the
  vLLM server log), opened with O_NOFOLLOW, so a symlink at `path` is an error (ELOOP), not a
  write somewhere else. Also refuses anything that is not a regular file (a FIFO would block).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO


_FLAGS = {
    "a": os.O_WRONLY | os.O_CREAT | os.O_APPEND,
    "a+": os.O_RDWR | os.O_CREAT | os.O_APPEND,
    "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
}


def _read_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()  # once, at import: os.umask is process-wide and not thread-safe


class UnsafePathError(OSError):
    """The path is a symlink or not a regular file: the plugin will not write through it."""


def open_nofollow(path: str | os.PathLike, mode: str = "ab", encoding: str | None = None,
                  buffering: int = -1) -> IO:
    """`open(path, mode)` for "a", "a+" and "w" modes (text or binary) that refuses a symlink
    or a non-regular file at `path` with UnsafePathError."""
    path = Path(path)
    base = mode.replace("b", "").replace("t", "")
    if base not in _FLAGS:
        raise ValueError(f"open_nofollow mode must be 'a', 'a+' or 'w' (text or binary), not {mode!r}")
    flags = _FLAGS[base] | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0) | os.O_NONBLOCK
    # O_NONBLOCK: opening a planted FIFO must fail below, not hang here
    if base == "w":
        flags &= ~os.O_TRUNC  # truncate only once we know it is a regular file
    try:
        fd = os.open(path, flags, 0o644)
    except OSError as exc:
        if path.is_symlink():
            raise UnsafePathError(exc.errno, f"refusing to write through the symlink {path}", str(path)) from None
        if path.exists() and not path.is_file():  # a FIFO with no reader: ENXIO
            raise UnsafePathError(exc.errno, f"refusing to write to {path}: not a regular file") from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UnsafePathError(f"refusing to write to {path}: not a regular file")
        os.set_blocking(fd, True)
        if base == "w":
            os.ftruncate(fd, 0)
        if "b" in mode:
            return os.fdopen(fd, mode, buffering=buffering)
        return os.fdopen(fd, mode, buffering=buffering, encoding=encoding or "utf-8")
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def replacing(path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8") -> Iterator[IO]:
    """Yield a handle on a fresh temp file beside `path`; on a clean exit it replaces `path`
    (a symlink there is replaced, never followed); on an exception it is removed."""
    path = Path(path)
    if mode not in ("w", "wb"):
        raise ValueError(f"replacing() mode must be 'w' or 'wb', not {mode!r}")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": encoding})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give what open() would
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def unwritable(path: str | os.PathLike) -> str | None:
    """Why a file cannot be written at `path`, or None; its missing folders are made, as every
    output flag makes them. Checked before slow work, so a bad path fails in seconds, not at the end."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        return "is a folder"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        return f"{path.parent} is a file, not a folder"
    except OSError as exc:
        return f"cannot make its folder {path.parent} ({exc.strerror or exc})"
    if not os.access(path.parent, os.W_OK):
        return f"its folder {path.parent} is not writable"
    return None


def unmakeable_folder(path: str | os.PathLike) -> str | None:
    """Why a folder cannot be made (or written in) at `path`, or None; makes nothing that stays
    (unlike `unwritable`): the nearest folder that exists gets a temp folder made and removed, since
    root's `os.access` says yes to /proc and the like."""
    path = Path(os.path.abspath(path))
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return "is a file, not a folder" if existing == path else f"{existing} is a file, not a folder"
    if existing != path and not os.access(existing, os.W_OK | os.X_OK):
        return f"its folder {existing} is not writable"
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".write-test-", dir=existing))
    except OSError as exc:
        where = "it" if existing == path else f"its folder {existing}"
        return f"cannot write in {where} ({exc.strerror or exc})"
    return None



def write_atomic(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write all of `data` to `path` through `replacing`: readers see the old file or the new one."""
    with replacing(path, "wb" if isinstance(data, bytes) else "w", encoding) as handle:
        handle.write(data)
    return Path(path)



def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)  # a hard link
    except (OSError, RuntimeError):  # a symlink loop: cannot be the same readable input
        return False


def overwritten_input(path: str | os.PathLike,
                      inputs: Iterable[tuple[str | os.PathLike | None, str]]) -> str | None:
    """What `path` is when writing it would overwrite one of the command's own inputs, or None.

    `inputs`: (path, what) pairs, e.g. (config, "the config") or (log, "the rollout log"); a
    None path is skipped. Symlinks and relative paths are resolved before comparing, so
    `--out ./cfg.yaml` and `--out link-to-cfg.yaml` are caught too. Checked before any work:
    an output flag must never replace the file the command reads."""
    path = Path(path)
    for given, what in inputs:
        if given is not None and str(given) and _same_file(path, Path(given)):
            return what
    return None


def config_inputs(config: str | os.PathLike | None) -> list[tuple[Path, str]]:
    """A training yaml and the local dataset files it names, as `overwritten_input` pairs:
    (CONFIG, "the config"), (datasets[i].path, "its dataset datasets[i].path"), ... A yaml that
    cannot be read gives the config alone (its own check reports why)."""
    if config is None:
        return []
    config = Path(config)
    pairs = [(config, "the config")]
    from ..config.load import read_yaml
    from ..errors import PluginError

    try:
        data = read_yaml(config)
    except PluginError:  # an unreadable yaml: the command's own load says why
        return pairs
    for key in ("datasets", "test_datasets"):
        entries = data.get(key)
        for index, entry in enumerate(entries if isinstance(entries, list) else []):
            path = entry.get("path") if isinstance(entry, dict) else None
            if isinstance(path, str) and path:
                pairs.append((Path(path), f"its dataset {key}[{index}].path"))
    return pairs


def input_clash(flag: str, path: str | os.PathLike, what: str) -> str:
    """The one-line error for an output flag that names one of the command's inputs."""
    return f"{flag} = {str(path)!r} is {what}: writing it would replace it. Fix: write to another file"

