#!/usr/bin/env bash
# The main job on the embedded default: set up, build (or reuse) the tiny pre-trained base,
# train it with GRPO through `axolotl train` on CPU, and print a before/after table and a plot.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export AXOLOTL_DO_NOT_TRACK=1 HF_HUB_OFFLINE=1   # no network needed; telemetry would hang at exit
python -m axolotl_grpo_plugin.demo "$@"   # base build (cached), before/after eval, `axolotl train configs/demo.yaml`
