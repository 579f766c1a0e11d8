#!/usr/bin/env bash
# The Axolotl 0.21 part of CI (issue 17): Python 3.12, Axolotl 0.21.0 (TRL 1.14.1) in its venv
# (scripts/setup-axolotl021.sh), then the tests of what differs between 0.19 and 0.21: the defaults
# table, the hooks and entry point, the config checks, trl_args, the rewards, the vLLM
# server checks against the fake server, `--cloud cloud.yaml` offline, and the CPU smoke
# `axolotl train configs/smoke.yaml` (plus the mixed-reward training run of test_reward_safety).
#
#   bash scripts/test-axolotl021.sh [pytest args]      PYTHON312=/path/to/python3.12 to choose
#
# The venv lives outside the checkout ($AXOLOTL021_VENV; see scripts/setup-axolotl021.sh) and is
# rebuilt only when its stamp changes; this checkout is installed into it, editable, every run.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup-axolotl021.sh
VENV=${AXOLOTL021_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/axolotl-grpo-plugin/venv-axolotl021}
# shellcheck disable=SC1091
. "$VENV/bin/activate"
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1
# shellcheck source=lib/test_workers.sh
. scripts/lib/test_workers.sh
workers=$(test_workers)
python -m pytest -p no:anyio -m "not slow" -n "$workers" --dist loadfile \
    tests/test_compat.py tests/test_architecture.py tests/test_validation.py tests/test_trl_args.py \
    tests/test_rewards_gsm8k.py tests/test_rewards_math_boxed.py tests/test_rewards_package.py \
    tests/test_rewards_deviations.py tests/test_reward_safety.py \
    tests/test_vllm_liveness.py tests/test_vllm_server.py tests/test_weight_sync_guard.py tests/test_vllm_cloud.py \
    tests/test_smoke_train.py tests/test_trackers.py tests/test_trim_padding.py tests/test_zero_advantage.py \
    tests/test_async_grpo.py tests/test_step_time.py tests/test_vllm_recovery.py \
    tests/test_tools_wiring.py tests/test_tools_train.py tests/test_tool_containment.py tests/test_post_tool_turns.py "$@"
