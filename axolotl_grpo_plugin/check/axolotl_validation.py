"""Axolotl's config validation for `check`, without importing what `axolotl train` needs later.

`axolotl.utils.config.validate_config` is pydantic validation against Axolotl's schema with the
plugins' keys merged in, but importing its module loads transformers' model classes and peft
(~3 s of CPU, most of a full `check`). When this plugin is the only one to merge (and the installed
Axolotl merges no built-in plugins, as 0.21 does), the same schema classes validate the same data
here. Any failure is handed to Axolotl's own `validate_config`, so an error reads exactly as
`axolotl train` would print it; tests/test_check_speed.py holds the results equal.
"""

from __future__ import annotations

from typing import Any

from ..config import defaults
from ..training.enabled import listed, only_ours


def validate(cfg, capabilities: dict[str, Any], env_capabilities: dict[str, Any]):
    """What `validate_config(cfg, capabilities, env_capabilities)` returns, as a DictDefault."""
    from axolotl.utils.dict import DictDefault

    if defaults.AXOLOTL.merges_builtin_plugins or not only_ours(cfg):
        return axolotl_validate(cfg, capabilities, env_capabilities)
    try:
        data = {**cfg.to_dict(), "capabilities": capabilities, "env_capabilities": env_capabilities}
        if cfg.get("datasets"):
            data["datasets"] = datasets(cfg)
        return DictDefault(dict(schema(listed(cfg))(**data).model_dump(exclude_none=True)))
    except Exception:  # noqa: BLE001 - Axolotl says what is wrong, in its own words
        return axolotl_validate(cfg, capabilities, env_capabilities)


def axolotl_validate(cfg, capabilities, env_capabilities):
    from axolotl.integrations.base import PluginManager
    from axolotl.utils.config import validate_config

    manager = PluginManager.get_instance()
    for name in cfg.get("plugins") or []:
        manager.register(name)
    return validate_config(cfg, capabilities=capabilities, env_capabilities=env_capabilities)


def schema(ours: bool):
    """AxolotlConfigWCapabilities with this plugin's keys, as Axolotl's `merge_input_args` builds it."""
    from axolotl.utils.schemas.config import AxolotlConfigWCapabilities

    if not ours:
        return AxolotlConfigWCapabilities
    from ..config.args import GRPOPluginArgs

    return type("AxolotlConfigWCapabilities", (AxolotlConfigWCapabilities, GRPOPluginArgs),
                {"__module__": __name__})


def datasets(cfg) -> list:
    """The dataset entries typed as validate_config types them (by `rl`, or `type: _synthetic`)."""
    from axolotl.utils.schemas.datasets import DPODataset, KTODataset, SFTDataset, SyntheticDataset

    typed = []
    for entry in cfg.get("datasets") or []:
        kind = entry.get("type") if isinstance(entry, dict) else getattr(entry, "type", None)
        if cfg.get("rl") in ("dpo", "ipo", "simpo"):
            model = DPODataset
        elif cfg.get("rl") == "kto":
            model = KTODataset
        elif kind == "_synthetic":
            model = SyntheticDataset
        else:
            model = SFTDataset
        typed.append(entry if isinstance(entry, model) else model(**dict(entry)))
    return typed
