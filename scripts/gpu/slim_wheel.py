"""Rewrite a wheel without the files its `# drop:` globs name (scripts/gpu/wheels.txt).

The GPU machine takes 64 MiB with the working tree; bitsandbytes ships a native library per
CUDA release (129 MB) and wandb its service binaries (51 MB), of which `axolotl train` on that
machine loads one CUDA 13 library and no binary. RECORD loses the dropped files' lines, so the
wheel stays installable and honest about its contents.

    python3 scripts/gpu/slim_wheel.py WHEEL GLOB [GLOB ...]
"""

from __future__ import annotations

import fnmatch
import os
import sys
import zipfile


def slim(wheel: str, globs: list[str]) -> tuple[int, int]:
    """Drop the matching files in place; returns (files dropped, bytes saved uncompressed)."""
    partial = wheel + ".partial"
    dropped, saved = 0, 0
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as target:
        kept_names = set()
        for info in source.infolist():
            if any(fnmatch.fnmatch(info.filename, g) for g in globs):
                dropped, saved = dropped + 1, saved + info.file_size
                continue
            kept_names.add(info.filename)
        for info in source.infolist():
            if info.filename not in kept_names:
                continue
            data = source.read(info)
            if info.filename.endswith(".dist-info/RECORD"):
                lines = data.decode().splitlines(keepends=True)
                data = "".join(line for line in lines if line.split(",")[0] in kept_names
                               or line.split(",")[0] == info.filename).encode()
            target.writestr(info, data)
    os.replace(partial, wheel)
    return dropped, saved


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip().splitlines()[-1].strip(), file=sys.stderr)
        return 2
    dropped, saved = slim(argv[0], argv[1:])
    if not dropped:
        print(f"error: {argv[0]}: no file matches {argv[1:]}; fix the `# drop:` globs", file=sys.stderr)
        return 1
    print(f"    {os.path.basename(argv[0])}: {dropped} files dropped ({saved / 2**20:.0f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
