"""Build (and cache) the embedded tiny model directory ``OUT/tiny-qwen2``.

The build is cheap but not free (~10 s with imports), and tests, CI and the
smoke config all want it, so it is stamped with the seed and a version
constant and reused while both match. It is written to a temporary sibling
directory and renamed into place, so a killed build never leaves a
half-written model that later looks valid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from ..system.paths import embedded_dir


# Bump whenever the problems, tokenizer or model recipe changes: cached builds are then rebuilt.
EMBEDDED_VERSION = 1
# a checkout's .cache/embedded, else the user cache (system/paths.py; $AXOLOTL_GRPO_CACHE overrides)
DEFAULT_OUT = embedded_dir()
MODEL_DIR_NAME = "tiny-qwen2"
STAMP_FILE = "build.json"
# Model variants: directory name and the shape arguments of build_tiny_model.
# `hd32` keeps the width (64) and the parameter count but uses 2 heads / 1 KV head,
# so head_dim is 32: vLLM's CPU attention supports head sizes of 32 and up only
# (docs/vllm.md, "vLLM on CPU"). The default model and the demo do not change.
VARIANTS: dict[str, tuple[str, dict[str, int]]] = {
    "default": (MODEL_DIR_NAME, {}),
    "hd32": (f"{MODEL_DIR_NAME}-hd32", {"heads": 2, "kv_heads": 1}),
}
T = TypeVar("T")


@dataclass(frozen=True)
class BuildResult:
    model_dir: Path
    cached: bool
    seconds: float
    vocab_size: int | None = None
    parameters: int | None = None


def _stamp(seed: int, variant: str = "default") -> dict:
    stamp = {"seed": seed, "version": EMBEDDED_VERSION}
    return stamp if variant == "default" else stamp | {"variant": variant}


def is_built(model_dir: Path, seed: int, variant: str = "default") -> bool:
    """True when ``model_dir`` holds a finished build for this seed, variant and code version."""
    try:
        stamp = json.loads((model_dir / STAMP_FILE).read_text())
    except (OSError, ValueError):
        return False
    # the default model's stamp has no "variant" key (builds made before variants stay valid)
    return {key: stamp.get(key) for key in ("seed", "version", "variant")} == {"variant": None} | _stamp(seed, variant)


def _write_model_dir(target: Path, seed: int, variant: str = "default") -> tuple[int, int]:
    from .model import build_tiny_model
    from .tokenizer import build_tokenizer

    tokenizer = build_tokenizer()
    model = build_tiny_model(tokenizer, target, seed=seed, **VARIANTS[variant][1])
    parameters = sum(p.numel() for p in model.parameters())
    # The stamp is written last: its presence means everything else is complete.
    stamp = _stamp(seed, variant) | {"vocab_size": len(tokenizer), "parameters": parameters}
    (target / STAMP_FILE).write_text(json.dumps(stamp, indent=2) + "\n")
    return len(tokenizer), parameters


def build(out: str | Path = DEFAULT_OUT, seed: int = 0, force: bool = False,
          variant: str = "default") -> BuildResult:
    """Ensure ``out/tiny-qwen2`` (or the variant's directory) holds the tokenizer + model
    for ``seed``; return where."""
    if variant not in VARIANTS:
        raise ValueError(f"variant={variant!r}: unknown embedded model variant; use one of {sorted(VARIANTS)}")
    model_dir = Path(out) / VARIANTS[variant][0]
    return build_once(model_dir, lambda: is_built(model_dir, seed, variant),
                      lambda staging: _write_model_dir(staging, seed, variant), force)


def build_once(model_dir: Path, is_done: Callable[[], bool],
               write: Callable[[Path], tuple[int | None, int | None]], force: bool = False) -> BuildResult:
    """The model in ``model_dir``: found there when ``is_done()``, else ``write_atomically``
    (``write`` returns the vocabulary size and parameter count) under a lock on ``model_dir``.
    Two processes that need the same model (two test workers, a demo beside a test run) build
    it once: the second waits, then finds it built, instead of building it again and swapping
    the folder out from under the first one's readers. The lock file is in the temp folder,
    named by the model folder's path, so the model's folder holds only the model."""
    from filelock import FileLock

    start = time.perf_counter()
    if not force and is_done():  # the common case: no lock to take
        return BuildResult(model_dir, cached=True, seconds=time.perf_counter() - start)
    key = hashlib.sha1(str(model_dir.resolve()).encode()).hexdigest()[:16]
    with FileLock(Path(tempfile.gettempdir()) / f"axolotl-grpo-build-{key}.lock"):
        if not force and is_done():  # built by another process while this one waited
            return BuildResult(model_dir, cached=True, seconds=time.perf_counter() - start)
        vocab_size, parameters = write_atomically(model_dir, write)
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
