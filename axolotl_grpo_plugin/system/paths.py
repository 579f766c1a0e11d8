"""Where the package's own files live, installed or in a checkout, and where it caches.

The demo, smoke and SmolLM2 configs and the sample data ship inside the package, so a
`pip install` has them; relative paths in those configs
(`axolotl_grpo_plugin/data/...`, `.cache/embedded/...`) are written for a checkout's
root and are made absolute here for any other working directory. Built models go to a
user cache, never into whatever directory the user happens to be in.
"""

from __future__ import annotations

import os
from pathlib import Path


PACKAGE_DIR = Path(__file__).resolve().parents[1]
# Relative `axolotl_grpo_plugin/...` paths resolve against the folder holding the package:
# the checkout root, or site-packages once installed.
PACKAGE_PARENT = PACKAGE_DIR.parent
CONFIGS_DIR = PACKAGE_DIR / "configs"
DATA_DIR = PACKAGE_DIR / "data"
CACHE_ENV = "AXOLOTL_GRPO_CACHE"


def user_path(text: str | os.PathLike) -> Path:
    """`~` and `~user` expanded as the shell would. Not `Path.expanduser`, which raises
    RuntimeError for an unknown `~nosuchuser/...`: such a path stays as written, so it is simply
    not there (a clear "not found"), never a traceback."""
    return Path(os.path.expanduser(os.fspath(text)))


def checkout_root() -> Path | None:
    """The source checkout this package runs from, or None when it is installed."""
    return PACKAGE_PARENT if (PACKAGE_PARENT / "pyproject.toml").is_file() and (
        PACKAGE_PARENT / "configs").is_dir() else None


def cache_dir() -> Path:
    """$AXOLOTL_GRPO_CACHE, else `.cache/` of a checkout, else the user cache
    ($XDG_CACHE_HOME or ~/.cache)/axolotl-grpo-plugin."""
    if os.environ.get(CACHE_ENV):
        return user_path(os.environ[CACHE_ENV]).resolve()
    root = checkout_root()
    if root is not None:
        return root / ".cache"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "axolotl-grpo-plugin"


def embedded_dir() -> Path:
    """Where the embedded tiny models are built (`<cache>/embedded`)."""
    return cache_dir() / "embedded"


def packaged_config(name: str) -> Path:
    """The path of a config shipped in the package (`demo`, `smoke`, `smollm2-gsm8k-sft` ...)."""
    return CONFIGS_DIR / f"{name.removesuffix('.yaml')}.yaml"


def packaged_config_names() -> list[str]:
    return sorted(path.stem for path in CONFIGS_DIR.glob("*.yaml"))


def resolve_packaged_paths(cfg: dict) -> dict:
    """Make a packaged config's relative paths absolute (in place; returns `cfg`): dataset
    paths inside the package, and `.cache/embedded/NAME` models in the embedded cache."""
    for key in ("datasets", "test_datasets"):
        for dataset in cfg.get(key) or []:
            path = dataset.get("path") if isinstance(dataset, dict) else None
            if path and not Path(path).is_absolute() and (PACKAGE_PARENT / path).exists():
                dataset["path"] = str(PACKAGE_PARENT / path)
    model = cfg.get("base_model")
    prefix = ".cache/embedded/"
    if isinstance(model, str) and model.startswith(prefix):
        cfg["base_model"] = str(embedded_dir() / model.removeprefix(prefix))
    return cfg
