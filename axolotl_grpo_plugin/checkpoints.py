"""Which checkpoint a launch resumes from, and whether it is whole.

Axolotl 0.19's rule (`axolotl.utils.train.determine_last_checkpoint`): an explicit
`resume_from_checkpoint`, else, under `auto_resume_from_checkpoints`, the highest
`output_dir/checkpoint-N`. transformers writes a checkpoint in place and its
`trainer_state.json` last, so a run killed while saving leaves a `checkpoint-N` without it;
auto-resume picks that one, and transformers 5 fails on it only after the model has loaded
(`TrainerState.load_from_json`), with an autostarted vLLM server already loading its weights.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


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
