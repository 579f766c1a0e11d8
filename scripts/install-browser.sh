#!/usr/bin/env bash
# Headless Chromium + chromedriver for the report's browser tests (tests/test_report.py).
# Installs the Debian packages when apt-get is available and we are root; otherwise
# says why and exits 0, so the browser tests skip with that reason instead of failing.
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "==> chromium and chromedriver already installed"; exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "==> no apt-get here: install Chromium and a matching chromedriver yourself;" \
         "the browser tests will skip until then"; exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "==> not root: run 'sudo apt-get install -y chromium chromium-driver';" \
         "the browser tests will skip until then"; exit 0
fi
echo "==> installing chromium and chromium-driver (Debian packages)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
    || { echo "==> could not install Chromium; the browser tests will skip"; exit 0; }
