"""The sampling CLIs' (evaluate, probe) checks of their flags, done before anything loads:
numbers at parsing, then the device, the models and the output paths, so a bad value fails
in seconds with its fix instead of after the model is loaded and the prompts are sampled."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..system.paths import user_path
from ..system.safe_files import config_inputs as files_of_config
from ..system.safe_files import overwritten_input, unwritable
from .prompts import EvalError


DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")


def bad_device_form(device: str | None) -> str | None:
    """--device is auto, cpu, cuda or cuda:N (what the transformers backend runs on)."""
    if device is None or DEVICE.fullmatch(device):
        return None
    return f"--device = {device!r}: unknown device. Fix: use auto, cpu, cuda or cuda:N"


def check_device(device: str | None) -> str | None:
    """The device to pass on (None for auto), refused with exit 2 when this machine lacks it."""
    if device in (None, "auto"):
        return None
    if device.startswith("cuda"):
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise EvalError(f"--device {device}: no CUDA GPU here; use cpu or auto")
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise EvalError(f"--device {device}: this machine has {count} CUDA GPU(s) (cuda:0 to "
                            f"cuda:{count - 1}); use one of them, cpu or auto")
    return device


def check_model_dir(model: str, flag: str) -> None:
    """A local model folder must hold a model (config.json, or a PEFT adapter's adapter_config.json)."""
    path = user_path(model)
    if path.is_file():
        raise EvalError(f"{flag} {model}: is a file, not a model folder. Fix: pass a checkpoint "
                        "directory (with config.json) or a Hub id (org/name)")
    if path.is_dir() and not any((path / name).is_file() for name in ("config.json", "adapter_config.json")):
        raise EvalError(f"{flag} {model}: not a model folder (no config.json or adapter_config.json in it). "
                        "Fix: pass a checkpoint directory or a Hub id (org/name)")


def config_inputs(config: Any, dataset: str | None = None) -> list[tuple[Any, str]]:
    """The files a run reads, as `safe_files.overwritten_input` pairs: the config and its local
    dataset paths, and --dataset, for `check_output`."""
    pairs = files_of_config(config) if isinstance(config, (str, Path)) else []
    return [*pairs, (dataset, "the --dataset file")]


def check_output(flag: str, path: str | Path, inputs: list[tuple[Any, str]]) -> None:
    """An output file: not one of the inputs, and writable (its folder made), said before the work."""
    what = overwritten_input(path, inputs)
    if what:
        raise EvalError(f"{flag} {path}: is {what}, which this command reads; writing it would destroy it. "
                        "Fix: write to another file")
    why = unwritable(path)
    if why:
        raise EvalError(f"{flag} {path}: {why}. Fix: name a file in a folder you can write")


def check_out_dir(flag: str, folder: str | Path, files: list[str], inputs: list[tuple[Any, str]]) -> None:
    """An output folder (made here) and the `files` to be written in it, checked as `check_output`."""
    what = overwritten_input(folder, inputs)
    if what:
        raise EvalError(f"{flag} {folder}: is {what}, which this command reads. Fix: name a folder "
                        "for the outputs, e.g. --out eval-outputs/NAME")
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise EvalError(f"{flag} {folder}: is a file, not a folder. Fix: name a folder for the outputs, "
                        "e.g. --out eval-outputs/NAME")
    for name in files:
        target = folder / name
        what = overwritten_input(target, inputs)
        if what:
            raise EvalError(f"{flag} {folder}: its {name} would overwrite {what}. Fix: name another folder")
        why = unwritable(target)
        if why:
            raise EvalError(f"{flag} {folder}: cannot write {name} there ({why}). Fix: name a folder "
                            "you can write")
