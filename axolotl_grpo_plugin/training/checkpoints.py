"""Which checkpoint a launch resumes from, and whether it is whole.

Axolotl 0.19's rule (`axolotl.utils.train.determine_last_checkpoint`): an explicit
`resume_from_checkpoint`, else, under `auto_resume_from_checkpoints`, the highest
`output_dir/checkpoint-N`. transformers writes a checkpoint in place and its
`trainer_state.json` last, so a run killed while saving leaves a `checkpoint-N` without it;
auto-resume picks that one, and transformers 5 fails on it only after the model has loaded
(`TrainerState.load_from_json`), with an autostarted vLLM server already loading its weights.
So auto-resume takes the last whole checkpoint instead (`last_whole_instead`, set by
checks.prepare_config), and a save that fails (a full disk) says which checkpoint is whole
(watch/saves.py).
transformers deletes older checkpoints (`save_total_limit`) only after a save finished, so
the previous whole one is still there.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    from ..config.run import Run


STATE_FILE = "trainer_state.json"  # transformers' TRAINER_STATE_NAME, written last


def checkpoints(output_dir: str | Path) -> list[Path]:
    """output_dir/checkpoint-N folders, lowest N first."""
    found = [p for p in Path(output_dir).glob("checkpoint-*") if p.name.removeprefix("checkpoint-").isdigit()]
    return sorted(found, key=lambda p: int(p.name.removeprefix("checkpoint-")))


def resume_target(run: Run) -> Path | None:
    """The checkpoint this launch resumes from (Axolotl's rule), or None for a fresh run."""
    if run.resume_from_checkpoint:
        return Path(str(run.resume_from_checkpoint))
    if run.auto_resume_from_checkpoints and _output_dir(run):
        found = checkpoints(run.output_dir)
        return found[-1] if found else None
    return None


def _output_dir(run: Run) -> str | None:
    """`output_dir` as the config writes it (None when unset: no folder to resume from)."""
    return run.output_dir if "output_dir" in run.model_fields_set else None


def is_complete(checkpoint: Path) -> bool:
    return (checkpoint / STATE_FILE).is_file()


def last_whole(output_dir: str | Path, found: list[Path] | None = None) -> Path | None:
    """The newest checkpoint saved whole (of `found`, when the caller already listed them)."""
    whole = [p for p in (checkpoints(output_dir) if found is None else found) if is_complete(p)]
    return whole[-1] if whole else None


def last_whole_instead(run: Run) -> tuple[Path, Path] | None:
    """(the torn checkpoint auto-resume would pick, the last whole one) when there is a whole one
    to take instead; None when auto-resume is off, explicit, or its pick is whole."""
    if run.resume_from_checkpoint or not run.auto_resume_from_checkpoints or not _output_dir(run):
        return None
    found = checkpoints(run.output_dir)
    if not found or is_complete(found[-1]):
        return None
    whole = last_whole(run.output_dir, found)
    return (found[-1], whole) if whole is not None else None
