"""The one reader of training configs: a yaml path, a dict or Axolotl's DictDefault in, a
private plain-dict copy out, names as written.

`check`, `stats`, `evaluate`, `plan`, `probe` and the demo all read configs here, so a yaml
syntax error reads the same in every tool. Resolving reward and transform names needs the
registry, a layer above: `names.load_config` is this copy with its names resolved.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import yaml

from ..errors import GRPOConfigError, Problem
from .defaults import CONFIG_PATH_KEY


class ConfigFileError(GRPOConfigError):
    """The config file itself cannot be read (missing, not yaml, not a mapping)."""

    style = "lines"


TRAINING_YAML = "the yaml you give `axolotl train` (`base_model: ...`, `rl: grpo`, ...)"


def read_yaml(path: str | Path, key: str = "config", wanted: str = TRAINING_YAML) -> dict[str, Any]:
    return read_yaml_text(path, key, wanted)[0]


def read_yaml_text(path: str | Path, key: str = "config", wanted: str = TRAINING_YAML) -> tuple[dict[str, Any], str]:
    """The yaml mapping in `path` and the text it was read from, or ConfigFileError saying which line is
    wrong. `key`: the flag or key that named the file; `wanted`: what the fix asks for instead."""
    path = Path(path)

    def refused(why: str, fix: str = f"pass {wanted}") -> ConfigFileError:
        return ConfigFileError([Problem(key, str(path), why, fix)])

    if path.is_dir():
        raise refused("is a folder, not a yaml file")
    if not path.is_file():
        raise refused("file not found" + ("" if path.is_absolute() else f" (relative paths start at {Path.cwd()})"))
    try:
        text = path.read_text(encoding="utf-8")
        loader = yaml.SafeLoader(text)  # one parse: the nodes (the lines of repeated keys), then the data
        repeated = _repeated_keys(node := loader.get_single_node())  # before constructing folds `<<` merges in
        data = None if node is None else loader.construct_document(node)
        loader.dispose()
    except yaml.YAMLError as exc:
        at, what = _yaml_error_place(exc)
        raise refused(f"not valid yaml{at}: {what}", "correct the yaml syntax there") from None
    except UnicodeDecodeError as exc:
        raise refused(f"not a text file ({exc.reason})") from None
    if not isinstance(data, dict):
        raise refused("does not hold a mapping of keys")
    if repeated:
        raise ConfigFileError([Problem(key, str(path), f"`{name}` is written twice (lines {first} and {again}): "
                                       "yaml keeps the last one and drops the first without a word",
                                       f"keep one `{name}` (merge the two)")
                               for name, first, again in sorted(repeated, key=lambda found: found[2])])
    return data, text


def _repeated_keys(node, key: str = "") -> list[tuple[str, int, int]]:
    """(dotted key, its first line, the line it is repeated on) for each key a mapping of the yaml
    holds twice (two `trl:` sections: Axolotl trains with the second alone)."""
    found = []
    if isinstance(node, yaml.MappingNode):
        lines: dict[str, int] = {}
        for name_node, value in node.value:
            name, line = str(name_node.value), name_node.start_mark.line + 1
            if name in lines and name != "<<":  # `<<`: a merge of an anchor, not a key
                found.append((f"{key}.{name}".lstrip("."), lines[name], line))
            lines.setdefault(name, line)
            found.extend(_repeated_keys(value, f"{key}.{name}"))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(_repeated_keys(item, f"{key}[{index}]"))
    return found


def read_config(path: str | Path) -> tuple[dict[str, Any], str]:
    """The config file's mapping, with its absolute path recorded as Axolotl records it, and its text."""
    raw, text = read_yaml_text(path)
    raw.setdefault(CONFIG_PATH_KEY, str(Path(path).resolve()))
    return raw, text


def declared_processes(text: str) -> int | None:
    """The training processes a config's leading comments declare (`# Processes: 7`, as the shipped
    multi-GPU configs do): `check` and `plan` default to it. Axolotl never reads it."""
    for line in text.splitlines():
        if not line.startswith("#"):
            if line.strip():
                return None  # past the leading comments
            continue
        if match := re.fullmatch(r"#\s*Processes:[ \t]*([1-9][0-9]*)\s*", line):
            return int(match.group(1))
    return None


def _yaml_error_place(exc) -> tuple[str, str]:
    """(` at line L, column C`, what is wrong) for a PyYAML error. PyYAML notices some mistakes
    only on a later line (a key without `:`, an unclosed bracket or quote); the line that holds
    the mistake is then its context mark, and that is the line named."""
    problem, context = getattr(exc, "problem_mark", None), getattr(exc, "context_mark", None)
    what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if problem is None:
        return "", what
    where = problem
    if context is not None and context.line < problem.line:
        where = context
        what = f"{what} ({getattr(exc, 'context', None) or 'started here'}; noticed at line {problem.line + 1})"
    return f" at line {where.line + 1}, column {where.column + 1}", what


def copy_config(config: Any) -> dict[str, Any]:
    """A private plain-dict copy of a config (yaml path, dict or DictDefault), names as written."""
    if isinstance(config, (str, Path)):
        return read_config(config)[0]
    if hasattr(config, "items"):
        return copy.deepcopy(plain(config))
    raise ConfigFileError([Problem("config", type(config).__name__, "not a yaml path or a mapping of config keys",
                                   "pass the yaml path you give `axolotl train`, or a dict")])


def plain(value: Any) -> Any:
    """DictDefault / pydantic-ish mappings -> plain dicts and lists."""
    if hasattr(value, "items"):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def set_keys(cfg: MutableMapping[str, Any], values: Mapping[str, Any]) -> None:
    """Write dotted keys (`trl.vllm_server_host`) into a config, a missing section created: the one
    way the plugin's fills and the autostart's address reach what Axolotl reads after register."""
    for dotted, value in values.items():
        *parents, leaf = dotted.split(".")
        node = cfg
        for parent in parents:
            if node.get(parent) is None:
                node[parent] = {}
            node = node[parent]
        node[leaf] = value


def section(cfg: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    """`cfg[name]` when it is a mapping, else an empty one: checks read keys without crashing
    on a section written as a list or a scalar (that mistake is reported by its own check)."""
    value = cfg.get(name) if hasattr(cfg, "get") else None
    return value if hasattr(value, "get") and hasattr(value, "items") else {}
