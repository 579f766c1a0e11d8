"""The watchdog over checkpoint saves: a save that fails on a full disk says which checkpoint
is whole and how to go on (training/checkpoints.py knows which is whole; transformers deletes older
checkpoints only after a save finished, so the previous whole one is still there)."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path
from typing import Any

from ..errors import EXIT_FAILED, PluginError
from ..training.checkpoints import last_whole


class CheckpointSaveError(PluginError):
    """A checkpoint could not be written (a full disk, a lost mount)."""

    exit_code = EXIT_FAILED


LOW_DISK_BYTES = 64 * 2**20  # below this, a failed save is taken for a full disk


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def watch_saves(trainer: Any) -> None:
    """A checkpoint save that fails on a full disk (an OSError; torch.save raises a RuntimeError
    "unexpected pos" instead) ends the run with what failed, which checkpoint is whole and how to
    go on, instead of a traceback deep in torch.save. Other errors pass through."""
    save = trainer._save_checkpoint
    if getattr(save, "_grpo_plugin_saves", False):
        return

    @functools.wraps(save)
    def _save_checkpoint(*args, **kwargs):
        try:
            return save(*args, **kwargs)
        except (OSError, RuntimeError) as exc:
            output_dir = Path(trainer.args.output_dir)
            free = free_bytes(output_dir)
            if not isinstance(exc, OSError) and (free is None or free >= LOW_DISK_BYTES):
                raise
            step = getattr(getattr(trainer, "state", None), "global_step", "?")
            whole = last_whole(output_dir)
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            why = why[:200]  # torch's RuntimeError carries a whole C++ trace
            if free is not None and free < LOW_DISK_BYTES:
                why = f"the disk is full ({free / 2**20:.1f} MB free; {why})"
            raise CheckpointSaveError(
                f"saving checkpoint-{step} in {output_dir} failed: {why}. "
                + (f"The last whole checkpoint is {whole}; " if whole else "No earlier checkpoint is whole; ")
                + "the torn one is skipped on resume. Fix: free space where output_dir is (`df -h "
                f"{output_dir}`) or lower `save_total_limit`, then run the same command with "
                "`auto_resume_from_checkpoints: true`") from exc

    _save_checkpoint._grpo_plugin_saves = True  # type: ignore[attr-defined]
    trainer._save_checkpoint = _save_checkpoint
