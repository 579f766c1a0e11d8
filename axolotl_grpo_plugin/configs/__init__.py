"""`axolotl-grpo configs DIR`: the packaged configs, ready to use from any folder.

The demo and smoke configs and the SmolLM2 pipeline's (cold-start SFT, rejection round, GRPO
on CPU) ship inside the package with paths written for a checkout's root; this writes copies
whose dataset and model paths are absolute (the installed sample data, the embedded-model
cache, and `./outputs/...` under DIR, where one config's output is the next one's input), so
`axolotl-grpo check DIR/smoke.yaml` and `axolotl train DIR/smoke.yaml` work wherever they are run.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from ..config.load import read_yaml
from ..system.paths import packaged_config, packaged_config_names, resolve_packaged_paths


def export(out: str | Path, names: list[str] | None = None, force: bool = False) -> list[Path]:
    """Write each packaged config (all by default) into `out`; existing files are kept
    unless `force`. Returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names or packaged_config_names():
        target = out / f"{name}.yaml"
        if target.exists() and not force:
            continue
        source = packaged_config(name)
        text = source.read_text(encoding="utf-8")
        original = read_yaml(source)
        cfg = resolve_packaged_paths(read_yaml(source))

        def beside(path: str) -> str:
            return str((out / path).resolve())

        # outputs next to the config, not in whatever folder `axolotl train` runs from
        for key in ("output_dir", "dataset_prepared_path"):
            if isinstance(cfg.get(key), str) and not Path(cfg[key]).is_absolute():
                cfg[key] = beside(cfg[key])
        # another packaged config's output read as input (the SFT model, the kept replies)
        if _in_outputs(cfg.get("base_model")):
            cfg["base_model"] = beside(cfg["base_model"])
        for dataset in cfg.get("datasets") or []:
            if isinstance(dataset, dict) and _in_outputs(dataset.get("path")):
                dataset["path"] = beside(dataset["path"])
        target.write_text(with_values(text, cfg, original), encoding="utf-8")
        if read_yaml(target) != cfg:  # a layout the line rewrite cannot follow: the plain dump
            target.write_text(leading_comments(text) + "\n" + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        written.append(target)
    return written


def _in_outputs(value) -> bool:
    """A relative path under `outputs/`, where the packaged configs write."""
    return isinstance(value, str) and not Path(value).is_absolute() and Path(value).parts[:1] == ("outputs",)


def with_values(text: str, cfg: dict, original: dict) -> str:
    """The packaged config's text (`original` as read), comments and layout kept, with the path
    values `cfg` changed: each `key: old` line rewritten."""
    changed = {old: new for old, new in zip(_strings(original), _strings(cfg)) if old != new}
    lines = []
    for line in text.splitlines(keepends=True):
        match = VALUE_LINE.match(line)
        if match and match["value"] in changed:
            line = f"{match['lead']}{yaml.safe_dump(changed[match['value']], width=10**6).splitlines()[0]}{match['rest']}"
        lines.append(line)
    return "".join(lines)


VALUE_LINE = re.compile(r"(?P<lead>^\s*(?:- )?[\w.]+:[ \t]+)(?P<value>[^\s#'\"][^#\n]*?)(?P<rest>[ \t]*(?:#.*)?\n?)$")


def _strings(value):
    """The scalar strings of a config, in document order (the two configs share their shape)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def leading_comments(text: str) -> str:
    """The comment block a config opens with (what it is for, how to launch it)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#") and line.strip():
            break
        lines.append(line)
    return "".join(lines).rstrip("\n") + "\n"
