#!/usr/bin/env bash
# Set up and run the test suite (slow tests excluded; run them with `-m slow`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-browser.sh   # Chromium for the report's browser tests (they skip without it)
. .venv/bin/activate
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
ruff check --quiet . || { echo "ruff found problems (ruff check --fix . mends most)"; exit 1; }
python -m pytest -m "not slow" -p no:anyio "$@"
