#!/usr/bin/env bash
# The main job on the embedded default: set up, build the tiny model, train with GRPO on CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1   # no network needed; telemetry would hang at exit
python -m axolotl_grpo_plugin.embedded build
axolotl train configs/smoke.yaml "$@"
