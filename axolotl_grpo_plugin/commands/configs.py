"""`axolotl-grpo configs DIR`: the command over `configs.export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .. import configs
from ..configs import export
from ..errors import PluginError
from ..system.paths import embedded_dir, packaged_config_names
from .flags import exit_for, prog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=prog("configs"), description=configs.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  axolotl-grpo configs grpo-configs\n  axolotl-grpo embedded build\n"
               "  axolotl-grpo check grpo-configs/smoke.yaml --cpu\n"
               "  AXOLOTL_DO_NOT_TRACK=1 axolotl train grpo-configs/smoke.yaml")
    parser.add_argument("out", help="folder to write into (created if missing)")
    parser.add_argument("--name", action="append", choices=packaged_config_names(),
                        help="only this config (repeatable; default: all)")
    parser.add_argument("--force", action="store_true", help="overwrite existing files")
    args = parser.parse_args(argv)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        parser.error(f"OUT {args.out} is a file, not a folder: name a folder to write the configs into "
                     "(created if missing), e.g. `axolotl-grpo configs grpo-configs`")
    try:
        written = export(args.out, args.name, args.force)
    except OSError as exc:  # a parent that is a file, a folder without write permission
        return exit_for(PluginError(f"OUT {args.out}: cannot write the configs there ({exc.strerror}: "
                                    f"{exc.filename}); name a folder you can write to"))
    for path in written:
        print(f"Wrote {path}")
    if not written:
        print(f"Nothing written: the configs exist in {args.out} (use --force to overwrite).")
    print(f"Their models are built into {embedded_dir()} by `axolotl-grpo embedded build` "
          "(smoke) and `axolotl-grpo demo` (demo); the smollm2-* and qwen-coder-* configs train the model "
          "`axolotl-grpo fetch-model smollm2-135m` (or qwen2.5-coder-0.5b / -1.5b) `--output-dir DIR` writes (pass --base-model DIR "
          "to the first of a chain: SmolLM2's cold-start SFT, or a Qwen config).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
