"""Keep third-party import chatter (torchao's "Failed to load ... .so", bitsandbytes'
offline-kernel warnings, torch's pytree notices) off the user's screen.

Those lines are written by C extensions, `warnings` and loggers alike, so the one
reliable place to catch them all is file descriptor 2. `captured_stderr()` sends it to
a log file (or discards it) while heavy imports and model calls run; `--verbose` in
each tool skips the capture. Anything the block raises still surfaces: the exception
propagates after the descriptor is restored, and the tail of what was captured is
printed with it. Progress bars are ours, not chatter: they write to `terminal()`, the
user's stderr even while fd 2 goes to the log.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from .paths import cache_dir


_terminal: TextIO | None = None  # the user's stderr while a capture is on


def terminal() -> TextIO:
    """The stream for progress bars: the user's stderr, also inside `captured_stderr`."""
    return _terminal if _terminal is not None else sys.stderr


def tool_log(tool: str) -> Path | None:
    """`<cache>/logs/TOOL.log`, emptied: where a tool's captured output goes, one run's worth.
    None where the cache cannot be written: the tool then shows everything, as with --verbose."""
    path = cache_dir() / "logs" / f"{tool}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("", encoding="utf-8")
    except OSError:
        return None
    return path


@contextlib.contextmanager
def captured_stderr(log: str | Path | None = None, enabled: bool = True) -> Iterator[None]:
    """Redirect fd 2 (and `sys.stderr`) to `log` (appended) or to a discarded temp file."""
    if not enabled:
        yield
        return
    sys.stderr.flush()
    global _terminal
    target = open(log, "a", encoding="utf-8") if log else tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115
    saved_fd, saved_stream, saved_terminal = os.dup(2), sys.stderr, _terminal
    _terminal = os.fdopen(os.dup(saved_fd), "w", buffering=1, encoding="utf-8", errors="replace")
    restored = False

    def restore() -> None:
        global _terminal
        nonlocal restored
        if not restored:
            sys.stderr.flush()
            os.dup2(saved_fd, 2)
            sys.stderr = saved_stream
            _terminal.close()
            _terminal = saved_terminal
            restored = True

    try:
        os.dup2(target.fileno(), 2)
        sys.stderr = target  # Python-level writes, when sys.stderr is not fd 2 (e.g. under pytest)
        try:
            yield
        except BaseException:
            restore()
            _replay_tail(target, log)
            raise
    finally:
        restore()
        os.close(saved_fd)
        target.close()


def _replay_tail(target, log, lines: int = 20) -> None:
    """On failure, show the last captured lines: they may say why."""
    with contextlib.suppress(OSError, ValueError):
        target.flush()
        if log:
            text = Path(log).read_text(encoding="utf-8", errors="replace")
        else:
            target.seek(0)
            text = target.read()
        tail = text.splitlines()[-lines:]
        if tail:
            print("\n".join(tail), file=sys.stderr)
