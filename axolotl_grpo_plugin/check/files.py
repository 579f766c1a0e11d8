"""What the config points at on disk: the base model, the datasets (dry-run through their transform),
the checkpoint a resumed run starts from."""

from __future__ import annotations

from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from ..config.run import Run, write
from ..errors import Problem
from ..sources import dry_run
from ..system.launch import Launch


def check_paths(run: Run, launch: Launch) -> list[Problem]:
    """A local `base_model` directory or dataset file that is not there (Axolotl would try it as a
    Hub id); the rule for local vs Hub is sources/data.is_local."""
    from ..embedded.pretrain import made_by
    from ..sources.data import DatasetSpec, looks_like_missing_path, missing_path

    problems = []
    model = run.base_model
    if isinstance(model, str) and looks_like_missing_path(model, bare_name_is_hub=True):
        where = "" if Path(model).is_absolute() else f" (relative paths start at {Path.cwd()})"
        fix = (f"build it: `{made_by(model)}` (in a checkout, from its root: it writes .cache/embedded/)" if made_by(model) else
               "correct the path, or give a Hub model id such as `Qwen/Qwen2.5-1.5B-Instruct`")
        problems.append(Problem("base_model", model, f"directory not found{where}.", fix))
    for name in dry_run.SECTIONS:
        for index, entry in enumerate(getattr(run, name)):
            path = entry.get("path") if hasattr(entry, "get") else None
            if isinstance(path, str) and path and looks_like_missing_path(path):
                spec = DatasetSpec(path, key=f"{name}[{index}]")
                problems.extend(missing_path(spec, run.config_path).problems)
    return problems


def check_output_dir(run: Run, launch: Launch) -> list[Problem]:
    """An `output_dir` that cannot be made or written in (a file on its path, a read-only or
    pseudo filesystem): Axolotl would stop in its config loading, after the plugin registered.
    One that does not exist yet under a writable folder is fine: Axolotl makes it."""
    from ..system.safe_files import unmakeable_folder

    why = unmakeable_folder(run.output_dir)
    if why is None:
        return []
    return [Problem("output_dir", run.output_dir, f"cannot be used as the run's output folder: {why}.",
                    "set `output_dir` to a folder you can write, e.g. ./outputs/run (it is made if missing)")]


def check_model_folder(run: Run, launch: Launch) -> list[Problem]:
    """A local base_model is a Hugging Face folder (not a GGUF file, not any folder)."""
    from ..models.folder import model_path_problems

    return model_path_problems("base_model", run.base_model)


def check_end_of_turn(run: Run, launch: Launch) -> list[Problem]:
    """A local tokenizer whose eos ends the model's turns (not missing, not equal to bos)."""
    from ..models.folder import end_of_turn_problems

    return end_of_turn_problems(run)


def check_datasets(cfg, run: Run, launch: Launch) -> list[Problem]:
    """Each local dataset entry loads, and its transform makes rows with `prompt` and the
    columns the rewards read (sources/dry_run.py)."""
    return dry_run.problems(cfg, run)


def check_resume(run: Run, launch: Launch) -> list[Problem]:
    """The checkpoint a resumed run starts from exists and was saved whole (training/checkpoints.py)."""
    from ..training.checkpoints import STATE_FILE, is_complete, last_whole, last_whole_instead, resume_target

    target = resume_target(run)
    if target is None or (target.is_dir() and is_complete(target)) or last_whole_instead(run):
        return []  # (auto-resume past a torn one: prepare_config takes the last whole one)
    key = "resume_from_checkpoint" if run.resume_from_checkpoint else "auto_resume_from_checkpoints"
    value = getattr(run, key)
    if not target.is_dir():
        return [Problem(key, value, f"no checkpoint folder at {target}.",
                        "point `resume_from_checkpoint` at an OUTPUT_DIR/checkpoint-N folder, or remove it")]
    whole = last_whole(target.parent)
    earlier = f"the last whole one is {whole}" if whole else "no earlier checkpoint is whole"
    return [Problem(key, value, f"{target} has no {STATE_FILE}, which transformers writes last: the run "
                    "was stopped while saving it, and resuming would fail after the model loads.",
                    f"delete {target} ({earlier}) or set `resume_from_checkpoint` to a whole checkpoint")]


def resume_from_last_whole(cfg: MutableMapping[str, Any], run: Run) -> tuple[Run, list[str]]:
    """Auto-resume would pick a checkpoint cut short while saving: resume from the last whole one
    (written into the config Axolotl reads, and the Run)."""
    from ..training.checkpoints import STATE_FILE, last_whole_instead

    instead = last_whole_instead(run)
    if instead is None:
        return run, []
    torn, whole = instead
    run = write(cfg, run, {"resume_from_checkpoint": str(whole)})
    return run, [f"{torn} has no {STATE_FILE} (the run stopped while saving it, or the disk filled): resuming "
                 f"from {whole}, the last whole checkpoint. {torn.name} is left as it is; this run saves over it."]
