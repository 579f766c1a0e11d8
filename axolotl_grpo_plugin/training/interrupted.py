"""An interrupted run says so: exit status 130, OUTPUT_DIR/INTERRUPTED, a log line, the report.

Axolotl 0.19 (axolotl/train.py `setup_signal_handler`, rank 0 only) installs a SIGINT
handler after our `post_trainer_create` hook: it saves the model to output_dir and calls
`sys.exit(0)`, so a script saw an interrupted run exactly as a finished one. At
`on_train_begin` (inside `trainer.train()`, so after Axolotl installed it) we wrap whatever
SIGINT handler is there: ours writes the marker (step, time) and logs, lets Axolotl's handler
save, then turns its `SystemExit(0)` into `SystemExit(130)` (128 + SIGINT, the shell's code).
Under `accelerate launch` the launcher then exits non-zero too. A new run in the same
output_dir removes a stale marker when it starts training.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from ..system.safe_files import write_atomic


LOG = logging.getLogger("axolotl_grpo_plugin")

MARKER_NAME = "INTERRUPTED"
EXIT_INTERRUPTED = 128 + signal.SIGINT


def read_marker(output_dir: str | os.PathLike) -> dict | None:
    """The marker of an interrupted run ({"step", "time", ...}), or None (finished or running)."""
    path = Path(output_dir) / MARKER_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return None if not path.exists() else {"step": None, "time": None}
    return data if isinstance(data, dict) else {"step": None, "time": None}


def mark_interrupted(output_dir: str | os.PathLike, step: int | None, signum: int = signal.SIGINT) -> Path:
    data = {"step": step, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "signal": signal.Signals(signum).name, "pid": os.getpid(),
            "exit_status": EXIT_INTERRUPTED}
    return write_atomic(Path(output_dir) / MARKER_NAME, json.dumps(data) + "\n")


def sigint_handler(previous: Any, on_interrupt) -> Any:
    """A SIGINT handler that calls `on_interrupt(signum)` first, then `previous`, and exits
    with 130 where `previous` would have exited 0."""

    def handler(signum, frame):
        if previous == signal.SIG_IGN:  # told to ignore Ctrl-C (a background job): training goes on
            return
        try:
            on_interrupt(signum)
        except Exception as exc:  # recording must never stop the save
            LOG.warning("axolotl_grpo_plugin: could not record the interruption (%s: %s)",
                        type(exc).__name__, exc)
        try:
            if callable(previous):
                previous(signum, frame)
            else:  # SIG_DFL, or None (a handler not set from Python)
                raise KeyboardInterrupt
        except SystemExit as exc:
            if exc.code in (0, None):
                raise SystemExit(EXIT_INTERRUPTED) from None
            raise

    return handler


def reentrant_tee_lock() -> None:
    """Axolotl tees stdout/stderr into its debug log under a plain `threading.Lock`. A SIGINT
    handler runs in the main thread, possibly in the middle of such a write (tqdm printing the
    step's log line), and both ours (a log line) and Axolotl's (save_pretrained logs) write
    again: the second acquire waits for the first forever (seen: the trainer hung after Ctrl-C,
    its stack ending in tee.write -> our handler -> tee.write). A reentrant lock lets the
    handler's write nest inside the interrupted one."""
    try:
        from axolotl.utils import tee
    except ImportError:
        return
    if not isinstance(getattr(tee, "_lock", None), type(threading.RLock())):
        tee._lock = threading.RLock()


def install(trainer: Any) -> None:
    """Add the callback that removes a stale marker at train begin and wraps the SIGINT handler."""
    from transformers import TrainerCallback

    class InterruptWatch(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            main = state.is_world_process_zero
            if main:
                try:
                    (Path(args.output_dir) / MARKER_NAME).unlink(missing_ok=True)
                except OSError:
                    pass
            if threading.current_thread() is not threading.main_thread():
                return

            def on_interrupt(signum):
                LOG.warning("axolotl_grpo_plugin: training interrupted by %s at step %s; the run is "
                            "marked in %s and exits with status %d after Axolotl saves the model.",
                            signal.Signals(signum).name, state.global_step,
                            Path(args.output_dir) / MARKER_NAME, EXIT_INTERRUPTED)
                if main:
                    mark_interrupted(args.output_dir, state.global_step, signum)

            reentrant_tee_lock()
            signal.signal(signal.SIGINT, sigint_handler(signal.getsignal(signal.SIGINT), on_interrupt))

    trainer.add_callback(InterruptWatch())
