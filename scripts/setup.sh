#!/usr/bin/env bash
# Create ./.venv and install the project with its test tools. Safe to re-run: it
# reinstalls only when pyproject.toml changed. torch 2.13.0 is installed first so
# pip does not pull a newer CUDA build on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: axolotl-grpo-plugin needs Python >= 3.11; '$PYTHON' is $("$PYTHON" -V 2>&1)." >&2
    echo "fix: install Python 3.11+ and run again with PYTHON=/path/to/python3.11" >&2
    exit 1
fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate

stamp=".venv/.installed-$(cat pyproject.toml | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    echo "==> installing axolotl-grpo-plugin into .venv (first time: a few minutes)"
    python -m pip install -q --upgrade pip
    python -c 'import torch' 2>/dev/null || python -m pip install -q "torch==2.13.0"
    # setuptools notes every editable install of a flat layout with a package-dir mapping
    # ("be careful with folders ... same name as your package"); only that module's notes are hidden.
    PYTHONWARNINGS="ignore::UserWarning:setuptools.command.editable_wheel" python -m pip install -q -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$stamp"
fi
