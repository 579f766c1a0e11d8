"""The keys Axolotl's own schema knows, per section, for the installed Axolotl, and the keys its
CLI writes into a config (`cli`: `axolotl train` sets `debug`, `shard`, ... before the plugin sees it).

Importing Axolotl's schema costs seconds (it pulls in torch and transformers), and `check`
answers a plugin-level problem without it: the key lists of each released Axolotl the plugin
supports are kept in axolotl_keys.json, read for the installed version (its metadata: instant).
An Axolotl not in the file is read from its schema. A test compares the file's row with the
installed schema; `python -m axolotl_grpo_plugin.config.schema --write` adds or refreshes it."""

from __future__ import annotations

import json
import sys
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path


KEYS_FILE = Path(__file__).with_name("axolotl_keys.json")


@lru_cache(maxsize=1)
def axolotl_fields() -> dict[str, frozenset[str]]:
    """`trl`, `vllm` and top-level (`top`) keys of Axolotl's config schema; `cli`: its CLI's keys."""
    row = json.loads(KEYS_FILE.read_text(encoding="utf-8")).get(version("axolotl"))
    if row is None:
        return imported_fields()
    return {section: frozenset(keys) for section, keys in row.items()}


# The commands that load a config (and so register the plugin) with their flags written into it.
CLI_ARGS = ("TrainerCliArgs", "PreprocessCliArgs", "EvaluateCliArgs", "InferenceCliArgs")


def imported_fields() -> dict[str, frozenset[str]]:
    """The same, read from the installed Axolotl's schema classes and CLI argument dataclasses."""
    import dataclasses

    from axolotl.cli import args as cli_args
    from axolotl.utils.schemas.config import AxolotlInputConfig
    from axolotl.utils.schemas.trl import TRLConfig
    from axolotl.utils.schemas.vllm import VllmConfig

    cli = {f.name for name in CLI_ARGS if hasattr(cli_args, name) for f in dataclasses.fields(getattr(cli_args, name))}
    return {"trl": keys(TRLConfig), "vllm": keys(VllmConfig), "top": keys(AxolotlInputConfig), "cli": frozenset(cli)}


def keys(schema) -> frozenset[str]:
    """Field names and the aliases a config may write instead (`model_type` for `type_of_model`)."""
    aliases = {a for f in schema.model_fields.values() for a in (f.alias, f.validation_alias) if isinstance(a, str)}
    return frozenset(schema.model_fields) | aliases


def write() -> None:
    """Add (or refresh) the installed Axolotl's row of axolotl_keys.json."""
    table = json.loads(KEYS_FILE.read_text(encoding="utf-8")) if KEYS_FILE.exists() else {}
    table[version("axolotl")] = {section: sorted(keys) for section, keys in imported_fields().items()}
    KEYS_FILE.write_text(json.dumps(dict(sorted(table.items())), indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python -m axolotl_grpo_plugin.config.schema --write")
    write()
