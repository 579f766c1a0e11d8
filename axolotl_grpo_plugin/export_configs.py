"""`axolotl-grpo configs DIR`: the packaged configs, ready to use from any folder.

The demo and smoke configs ship inside the package with paths written for a
checkout's root; this writes copies whose dataset and model paths are absolute
(the installed sample data, the embedded-model cache), so `axolotl-grpo check
DIR/smoke.yaml` and `axolotl train DIR/smoke.yaml` work wherever they are run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .config.load import read_yaml
from .paths import embedded_dir, packaged_config, packaged_config_names, resolve_packaged_paths


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
        header = leading_comments(source.read_text(encoding="utf-8"))
        cfg = resolve_packaged_paths(read_yaml(source))
        # outputs next to the config, not in whatever folder `axolotl train` runs from
        for key in ("output_dir", "dataset_prepared_path"):
            if isinstance(cfg.get(key), str) and not Path(cfg[key]).is_absolute():
                cfg[key] = str((out / cfg[key]).resolve())
        target.write_text(header + "\n" + yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        written.append(target)
    return written


def leading_comments(text: str) -> str:
    """The comment block a config opens with (what it is for, how to launch it)."""
    lines = []
    for line in text.splitlines(keepends=True):
        if not line.startswith("#") and line.strip():
            break
        lines.append(line)
    return "".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="axolotl-grpo configs", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  axolotl-grpo configs grpo-configs\n  axolotl-grpo embedded build\n"
               "  axolotl-grpo check grpo-configs/smoke.yaml --cpu\n"
               "  AXOLOTL_DO_NOT_TRACK=1 axolotl train grpo-configs/smoke.yaml")
    parser.add_argument("out", help="folder to write into (created if missing)")
    parser.add_argument("--name", action="append", choices=packaged_config_names(),
                        help="only this config (repeatable; default: all)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    written = export(args.out, args.name, args.force)
    for path in written:
        print(f"Wrote {path}")
    if not written:
        print(f"Nothing written: the configs exist in {args.out} (use --force to overwrite).")
    print(f"Their models are built into {embedded_dir()} by `axolotl-grpo embedded build` "
          "(smoke) and `axolotl-grpo demo` (demo).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
