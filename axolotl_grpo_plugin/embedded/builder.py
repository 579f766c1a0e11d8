"""Build (and cache) the embedded tiny model directory ``OUT/tiny-qwen2``.

The build is cheap but not free (~10 s with imports), and tests, CI and the
smoke config all want it, so it is stamped with the seed and a version
constant and reused while both match. It is written to a temporary sibling
directory and renamed into place, so a killed build never leaves a
half-written model that later looks valid.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..paths import embedded_dir


# Bump whenever the problems, tokenizer or model recipe changes: cached builds are then rebuilt.
EMBEDDED_VERSION = 1
# a checkout's .cache/embedded, else the user cache (paths.py; $AXOLOTL_GRPO_CACHE overrides)
DEFAULT_OUT = embedded_dir()
MODEL_DIR_NAME = "tiny-qwen2"
STAMP_FILE = "build.json"
T = TypeVar("T")


@dataclass(frozen=True)
class BuildResult:
    model_dir: Path
    cached: bool
    seconds: float
    vocab_size: int | None = None
    parameters: int | None = None


def _stamp(seed: int) -> dict:
    return {"seed": seed, "version": EMBEDDED_VERSION}


def is_built(model_dir: Path, seed: int) -> bool:
    """True when ``model_dir`` holds a finished build for this seed and code version."""
    try:
        stamp = json.loads((model_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    return {key: stamp.get(key) for key in ("seed", "version")} == _stamp(seed)


def _write_model_dir(target: Path, seed: int) -> tuple[int, int]:
    from .model import build_tiny_model
    from .tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, target, seed=seed)
    parameters = sum(p.numel() for p in model.parameters())
    # The stamp is written last: its presence means everything else is complete.
    stamp = _stamp(seed) | {"vocab_size": len(tokenizer), "parameters": parameters}
    (target / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
    return len(tokenizer), parameters


def build(out: str | Path = DEFAULT_OUT, seed: int = 0, force: bool = False) -> BuildResult:
    """Ensure ``out/tiny-qwen2`` holds the tokenizer + model for ``seed``; return where."""
    start = time.perf_counter()
    model_dir = Path(out) / MODEL_DIR_NAME
    if not force and is_built(model_dir, seed):
        return BuildResult(model_dir, cached=True, seconds=time.perf_counter() - start)
    vocab_size, parameters = write_atomically(model_dir, lambda staging: _write_model_dir(staging, seed))
    return BuildResult(model_dir, False, time.perf_counter() - start, vocab_size, parameters)


def write_atomically(model_dir: Path, write: Callable[[Path], T]) -> T:
    """Run ``write(staging_dir)`` and rename the result to ``model_dir``; nothing half-written stays."""
    out = model_dir.parent
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.building-", dir=out))
    staging.chmod(0o755)  # mkdtemp makes it private; the final model dir should not be
    try:
        result = write(staging)
        if model_dir.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{model_dir.name}.old-", dir=out))
            os.replace(model_dir, retired / model_dir.name)
            shutil.rmtree(retired, ignore_errors=True)
        os.replace(staging, model_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result
