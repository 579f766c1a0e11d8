#!/usr/bin/env bash
# Set up and run the test suite (slow tests excluded; run them with `-m slow`).
# It runs on every core, at most 4 (pytest-xdist, a test file per worker so that its fixtures run
# once): most of its time is one-thread work, so 2 cores run it 1.76x faster than one process
# (docs/benchmarks.md). TEST_WORKERS=N sets the count; TEST_WORKERS=0 runs in this process.
# The report's browser tests need Chromium; they skip without it. WITH_BROWSER=1 installs it
# first (Debian packages via apt-get, as root: 26 packages, a 77 MB download).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ "${WITH_BROWSER:-0}" = 1 ]; then
    echo "==> WITH_BROWSER=1: installing Chromium + chromedriver for the report's browser tests"
    bash scripts/install-browser.sh
elif ! command -v chromium >/dev/null; then
    echo "==> no Chromium: the report's browser tests will skip (WITH_BROWSER=1 installs it with apt-get)"
fi
. .venv/bin/activate
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
ruff check --quiet . || { echo "ruff found problems (ruff check --fix . mends most)"; exit 1; }
# shellcheck source=lib/test_workers.sh
. scripts/lib/test_workers.sh
workers=$(test_workers)
python -m pytest -m "not slow" -p no:anyio -n "$workers" --dist loadfile "$@"
