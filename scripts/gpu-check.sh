#!/usr/bin/env bash
# The GPU check (issue 50, docs/scaling.md): a few GRPO steps of `axolotl train` per case on one GPU,
# the peak memory, tokens/s and step time of each, against `axolotl-grpo plan`; writes
# outputs/gpu-check/gpu-check.json and prints a table. Run from the repository root.
#
#   bash scripts/gpu-check.sh [ARGS]            on a GPU machine; ARGS: `axolotl-grpo gpu-check --help`
#   bash scripts/gpu-check.sh --emulate         on CPU, in a venv made like the lent GPU machine's image
#
# On a machine without network (the lent GPU machine), the packages its image lacks come from the
# wheelhouse .gpu-wheels (built where pip works by scripts/gpu-wheels.sh, carried with the tree): they
# are installed with `pip --no-index --no-deps` into a folder put first on PYTHONPATH. Without a
# wheelhouse, whatever Axolotl this Python has is used. --emulate builds the image-like venv first
# when it is absent (Python 3.12, scripts/gpu/image-requirements.txt; ~3 GB, a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
# --budget-s counts from here, the wheelhouse install included (an outer `timeout` sees it all)
GPU_CHECK_STARTED=${GPU_CHECK_STARTED:-$(date +%s.%N)}
export GPU_CHECK_STARTED

PYTHON=${PYTHON:-python3}
WHEELS=${GPU_WHEELS:-.gpu-wheels}
SITE=${GPU_CHECK_SITE:-${TMPDIR:-/tmp}/gpu-check-site}

if [[ " $* " == *" --emulate "* ]]; then
    VENV=${GPU_IMAGE_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/axolotl-grpo-plugin/venv-gpu-image}
    stamp="$VENV/.installed-$(sha1sum < scripts/gpu/image-requirements.txt | cut -c1-12)"
    if [ ! -f "$stamp" ]; then
        # shellcheck source=lib/python312.sh
        . scripts/lib/python312.sh
        echo "==> building the image-like venv $VENV (first time: a few minutes)"
        new_venv312 "$VENV" > /dev/null
        "$VENV/bin/python" -m pip install -q -r scripts/gpu/image-requirements.txt 2> >(grep -v "^WARNING: Location" >&2)
        # shellcheck disable=SC2046  # the names are words
        "$VENV/bin/python" -m pip uninstall -q -y $(sed -n 's/^# remove: //p' scripts/gpu/image-requirements.txt)
        touch "$stamp"
    fi
    PYTHON="$VENV/bin/python"
    [ -d "$WHEELS" ] || bash scripts/gpu-wheels.sh
fi

rm -rf "$SITE"
mkdir -p "$SITE"
if [ -d "$WHEELS" ]; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$WHEELS"/*.whl
else
    echo "note: no wheelhouse at $WHEELS: using the Axolotl this Python has" >&2
fi
# This checkout's plugin, as installed: `rewards/` is the package axolotl_grpo_rewards (pyproject.toml)
ln -s "$PWD/rewards" "$SITE/axolotl_grpo_rewards"
export PYTHONPATH="$SITE:$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "$PYTHON" -m axolotl_grpo_plugin.gpu_check "$@"
