"""Which checkpoint a launch resumes from, and whether it is whole.

Axolotl 0.19's rule (`axolotl.utils.train.determine_last_checkpoint`): an explicit
`resume_from_checkpoint`, else, under `auto_resume_from_checkpoints`, the highest
`output_dir/checkpoint-N`. transformers writes a checkpoint in place and its
`trainer_state.json` last, so a run killed while saving leaves a `checkpoint-N` without it;
auto-resume picks that one, and transformers 5 fails on it only after the model has loaded
(`TrainerState.load_from_json`), with an autostarted vLLM server already loading its weights.
So auto-resume takes the last whole checkpoint instead (`last_whole_instead`, set by
checks.prepare_config), and a save that fails (a full disk) says which checkpoint is whole.
transformers deletes older checkpoints (`save_total_limit`) only after a save finished, so
the previous whole one is still there.
"""

from __future__ import annotations

import functools
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import EXIT_FAILED, PluginError


STATE_FILE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME, written last


def checkpoints(output_dir: str | Path) -> list[Path]:
    """output_dir/checkpoint-N folders, lowest N first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def resume_target(cfg: Mapping[str, Any]) -> Path | None:
    """The checkpoint this launch resumes from (Axolotl's rule), or None for a fresh run."""
    explicit = cfg.get("resume_from_checkpoint")
    if explicit:
        return Path(str(explicit))
    if cfg.get("auto_resume_from_checkpoints") and cfg.get("output_dir"):
        found = checkpoints(str(cfg["output_dir"]))
        return found[-1] if found else None
    return None


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / STATE_FILE).is_file()


def last_whole(output_dir: str | Path, found: list[Path] | None = None) -> Path | None:
    """The newest checkpoint saved whole (of `found`, when the caller already listed them)."""
    whole = [p for p in (checkpoints(output_dir) if found is None else found) if is_complete(p)]
    return whole[-1] if whole else None


def last_whole_instead(cfg: Mapping[str, Any]) -> tuple[Path, Path] | None:
    """(the torn checkpoint auto-resume would pick, the last whole one) when there is a whole one
    to take instead; None when auto-resume is off, explicit, or its pick is whole."""
    if cfg.get("resume_from_checkpoint") or not cfg.get("auto_resume_from_checkpoints") or not cfg.get("output_dir"):
        return None
    found = checkpoints(str(cfg["output_dir"]))
    if not found or is_complete(found[-1]):
        return None
    whole = last_whole(cfg["output_dir"], found)
    return (found[-1], whole) if whole is not None else None


class CheckpointSaveError(PluginError):
    """A checkpoint could not be written (a full disk, a lost mount)."""

    exit_code = EXIT_FAILED


LOW_DISK_BYTES = 64 * 2**20  # below this, a failed save is taken for a full disk


def free_bytes(path: Path) -> int | None:
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def guard_saves(trainer: Any) -> None:
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
