"""What `check --cloud CLOUD_YAML` adds for a launch through Axolotl's cloud runner
(`axolotl train CONFIG --cloud cloud.yaml`): the container's GPUs, and warnings for what is
lost or fails there. Axolotl runs the config in the container's `/workspace/mounts` and ships
only the config's text, so an output_dir that is not on one of cloud.yaml's volumes is lost
when the container stops; and its Modal runner asks the local `docker` CLI for the image digest
before anything starts (a missing `docker` stops it with FileNotFoundError)."""

from __future__ import annotations

import shutil
from pathlib import PurePosixPath
from typing import Any

from ..config.load import read_yaml
from ..errors import GRPOConfigError, Problem


def read_cloud(path: str) -> dict[str, Any]:
    """The cloud yaml, with `volumes` a list of mappings that have a `mount`."""
    cloud = read_yaml(path, "--cloud", "the cloud yaml Axolotl's `--cloud` reads (`provider: modal`, `gpu: h100`, ...)")
    volumes = cloud.get("volumes") or []
    if not isinstance(volumes, list) or not all(isinstance(v, dict) and v.get("mount") for v in volumes):
        raise GRPOConfigError([Problem("volumes", volumes, f"{path}: each volume needs a `name` and a `mount`.",
                                       "write `volumes: [{name: NAME, mount: /workspace/artifacts}]`")])
    return cloud


def asks_docker(cloud: dict[str, Any]) -> bool:
    """Whether the installed Axolotl's Modal runner calls the local docker CLI: 0.19 always (for
    its default image's digest), 0.21 only when cloud.yaml sets no `image:`."""
    from importlib.metadata import version

    from packaging.version import Version

    return not cloud.get("image") or Version(version("axolotl")) < Version("0.21")


def gpu_count(cloud: dict[str, Any]) -> int:
    return int(cloud.get("gpu_count") or 1)


def warnings(cloud: dict[str, Any], cloud_path: str, output_dir: str) -> list[str]:
    """What the cloud run would lose or trip on, each with its fix."""
    found = []
    mounts = [PurePosixPath(v["mount"]) for v in cloud.get("volumes") or []]
    where = PurePosixPath(output_dir)
    if not where.is_absolute() or not any(where == m or m in where.parents for m in mounts):
        shown = ", ".join(map(str, mounts)) or "none"
        target = next((m for m in mounts if "artifact" in str(m)), mounts[0] if mounts else None)
        fix = (f"set `output_dir: {target}/{where.name or 'run'}`" if target else
               f"add a volume to {cloud_path} and put output_dir on it")
        found.append(f"output_dir = {output_dir!r} is not on a volume of {cloud_path} (mounts: {shown}): "
                     f"checkpoints are lost when the container stops. Fix: {fix} "
                     "(configs/gsm8k-modal.yaml does).")
    if str(cloud.get("provider") or "modal") == "modal" and asks_docker(cloud) and shutil.which("docker") is None:
        found.append("the `docker` CLI is not installed here: Axolotl's Modal runner runs `docker manifest "
                     "inspect` on this machine before launching and stops with FileNotFoundError without it. "
                     "Fix: install the docker CLI (no daemon needed) where you run `axolotl train --cloud`.")
    return found
