#!/usr/bin/env bash
# The real-vLLM end-to-end tests on CPU (tests/test_vllm_cpu_e2e.py): set up .venv-vllm
# (scripts/setup-vllm-cpu.sh) and run only those tests in it. Kept out of .venv so
# that vLLM being importable does not change the main suite.
#
#   bash scripts/test-vllm-cpu.sh [pytest args]        every one of them (run this before a stop)
#   bash scripts/test-vllm-cpu.sh --ci [pytest args]   CI part 2: without the ones marked beyond_ci
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vllm-cpu.sh
. .venv-vllm/bin/activate
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
select="vllm_cpu"
if [ "${1:-}" = "--ci" ]; then shift; select="vllm_cpu and not beyond_ci"; fi
python -m pytest -m "$select" -p no:anyio -p no:cacheprovider --durations=20 tests/test_vllm_cpu_e2e.py tests/test_vllm_cpu_probe.py tests/test_remote_judge_vllm.py tests/test_dynamic_sampling_vllm_cpu.py "$@"
