"""Environment for the `axolotl train` processes we start ourselves (demo, tests).

Offline and without telemetry (Axolotl's telemetry hangs at exit without network), with
this checkout importable and the current interpreter's `bin/` first on PATH, because
Axolotl starts `accelerate` from PATH.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def offline_child_env(repo_root: Path | str | None) -> dict[str, str]:
    """`repo_root`: a checkout to put on PYTHONPATH, or None for an installed package."""
    env = dict(os.environ)
    env.update(
        AXOLOTL_DO_NOT_TRACK="1",
        HF_HUB_OFFLINE="1",
        HF_DATASETS_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        WANDB_MODE="disabled",
        TOKENIZERS_PARALLELISM="false",
        PYTHONPATH=os.pathsep.join(filter(None, [str(repo_root) if repo_root else None, env.get("PYTHONPATH")])),
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    return env
