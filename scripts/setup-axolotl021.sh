#!/usr/bin/env bash
# The Axolotl 0.21 venv (issue 17): Python 3.12, Axolotl 0.21.0 (TRL 1.14.1) and its ~3 GB of
# torch for cp312 (PyPI's CUDA build, which runs on the CPU), then this checkout, editable.
#
#   bash scripts/setup-axolotl021.sh       PYTHON312=/path/to/python3.12 to choose
#
# It lives outside the checkout, in $AXOLOTL021_VENV (default ~/.cache/axolotl-grpo-plugin/
# venv-axolotl021), so fresh clones on one machine (CI) reuse it while its stamp (the Axolotl
# pin and the install recipe) matches; a fresh machine builds it. Every run then installs this
# checkout into it (editable), so the tests run the code of this checkout. Run by
# scripts/test-axolotl021.sh, and by CI ahead of time, beside the earlier parts.
set -euo pipefail
cd "$(dirname "$0")/.."

AXOLOTL_SPEC="axolotl[modal]==0.21.0"   # [modal]: the `--cloud cloud.yaml` test
VENV=${AXOLOTL021_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/axolotl-grpo-plugin/venv-axolotl021}
INSTALL_RECIPE=2   # bump when the install steps below change

# shellcheck source=lib/python312.sh
. scripts/lib/python312.sh

stamp="$VENV/.installed-$(echo "$AXOLOTL_SPEC $INSTALL_RECIPE" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    started=$(date +%s)
    PYTHON=$(new_venv312 "$VENV")
    echo "==> installing $AXOLOTL_SPEC into $VENV with $PYTHON (first time: a few minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # pip compiles every module here (42% of this install: 221 s; 127 s with --no-compile). Not left
    # to the first import: where PYTHONDONTWRITEBYTECODE=1 is set (this project's machines, many Docker
    # images) that is never cached, every process compiles torch again, and CI's part 1 took 1.8x
    "$VENV/bin/python" -m pip install -q "$AXOLOTL_SPEC"
    echo "==> installed in $(( $(date +%s) - started )) s"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
# This checkout, as a user installs the plugin beside Axolotl 0.21: no other Axolotl, TRL or
# torch may come in (checked next).
PYTHONWARNINGS="ignore::UserWarning:setuptools.command.editable_wheel" "$VENV/bin/python" -m pip install -q -e ".[dev]"
"$VENV/bin/python" - "$AXOLOTL_SPEC" <<'PY'
import sys
from importlib.metadata import version
want = sys.argv[1].split("==")[1].split()[0]
assert version("axolotl") == want, f"pip moved axolotl to {version('axolotl')}"
print(f"==> axolotl {version('axolotl')}, trl {version('trl')}, transformers {version('transformers')}, "
  f"torch {version('torch')}")
PY
