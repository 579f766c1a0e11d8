"""What the GPU check records about the machine: GPU 0 from nvidia-smi (this process never opens a
CUDA context), the CPU, and the versions of what ran (a carried checkout by its commit)."""

from __future__ import annotations

import platform
import shutil
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


PACKAGES = ("torch", "transformers", "accelerate", "peft", "datasets", "trl", "axolotl", "axolotl-grpo-plugin")


def read_gpu() -> dict | None:
    """GPU 0 from nvidia-smi (this process never touches CUDA: no context, no memory held)."""
    fields = query_smi("name,memory.total,memory.used,driver_version")
    if not fields:
        return None
    name, total, used, driver = fields
    return {"name": name, "memory_gib": float(total) / 1024, "free_gib": (float(total) - float(used)) / 1024,
            "driver": driver}


def smi_used_gib() -> float | None:
    fields = query_smi("memory.used")
    return float(fields[0]) / 1024 if fields else None


def query_smi(fields: str) -> list[str] | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        done = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader,nounits", "-i", "0"],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = done.stdout.strip().splitlines()[0] if done.returncode == 0 and done.stdout.strip() else ""
    return [f.strip() for f in line.split(",")] if line else None


def describe_device(gpu: dict | None, emulate: bool) -> str:
    if gpu:
        return f"{gpu['name']}, {gpu['memory_gib']:.1f} GiB, driver {gpu['driver']}"
    return f"CPU ({cpu_name()}){', emulated' if emulate else ''}"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def versions(plugin_version: str) -> dict:
    """`plugin_version`: the package's `__version__`, for a checkout run from PYTHONPATH (no metadata)."""
    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = None
    if found["axolotl-grpo-plugin"] is None:  # scripts/gpu-check.sh runs the checkout from PYTHONPATH
        found["axolotl-grpo-plugin"] = checkout_version(plugin_version)
    try:
        import torch

        found["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return found


def checkout_version(plugin_version: str) -> str:
    """The plugin's version and, in a git checkout, its commit: which code a carried tree measured."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"{plugin_version} (checkout{' ' + commit if commit else ''})"
