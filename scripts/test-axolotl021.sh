#!/usr/bin/env bash
# The Axolotl 0.21 part of CI (issue 17): Python 3.12, Axolotl 0.21.0 (TRL 1.14.1) in
# ./.venv-axolotl021, then the tests of what differs between 0.19 and 0.21: the defaults
# table, the hooks and entry point, the config checks, trl_args, the rewards, the vLLM
# server checks against the fake server, `--cloud cloud.yaml` offline, and the CPU smoke
# `axolotl train configs/smoke.yaml` (plus the mixed-reward training run of test_reward_safety).
#
#   bash scripts/test-axolotl021.sh [pytest args]      PYTHON312=/path/to/python3.12 to choose
#
# The venv (Axolotl 0.21 and its ~3 GB of torch for cp312, PyPI's CUDA build, which runs on the
# CPU) lives outside the checkout, in $AXOLOTL021_VENV (default ~/.cache/axolotl-grpo-plugin/
# venv-axolotl021), so fresh clones on one machine (CI) reuse it while its stamp (the Axolotl
# pin and the install recipe) matches; a fresh machine builds it. Every run then installs this
# checkout into it (editable), so the tests run the code of this checkout.
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
    echo "==> installing $AXOLOTL_SPEC into $VENV with $PYTHON (first time: several minutes)"
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q "$AXOLOTL_SPEC"
    echo "==> installed in $(( $(date +%s) - started )) s"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
# This checkout, as a user installs the plugin beside Axolotl 0.21: no other Axolotl, TRL or
# torch may come in (checked next).
PYTHONWARNINGS="ignore::UserWarning:setuptools.command.editable_wheel" "$VENV/bin/python" -m pip install -q -e ".[dev]"
"$VENV/bin/python" - "$AXOLOTL_SPEC" <<'EOF'
import sys
from importlib.metadata import version
want = sys.argv[1].split("==")[1].split()[0]
assert version("axolotl") == want, f"pip moved axolotl to {version('axolotl')}"
print(f"==> axolotl {version('axolotl')}, trl {version('trl')}, transformers {version('transformers')}, "
  f"torch {version('torch')}")
EOF

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
    tests/test_smoke_train.py tests/test_trackers.py \
    tests/test_async_grpo.py tests/test_step_time.py tests/test_vllm_recovery.py \
    tests/test_tools_wiring.py tests/test_tools_train.py tests/test_tool_containment.py tests/test_post_tool_turns.py "$@"
