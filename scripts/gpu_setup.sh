#!/usr/bin/env bash
# Set up a virtual environment with PyTorch's CUDA build on a GPU machine and run the GPU check.
#
#   bash scripts/gpu_setup.sh            # venv in .venv-gpu, then benchmarks/gpu_check.py
#   bash scripts/gpu_setup.sh --no-run   # set up only
#
# Only the package registries are reachable from the GPU machine: everything comes from the
# repo's own files (pyproject.toml) and PyPI. On Linux x86_64, `pip install torch==2.13.0` from
# PyPI is the CUDA build (it pulls the nvidia-* runtime wheels), which is what we want here.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV="${EMOFACE_GPU_VENV:-.venv-gpu}"
RUN=1
[[ "${1:-}" == "--no-run" ]] && RUN=0

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu_setup: no nvidia-smi here; this script is for a machine with an NVIDIA GPU" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader

PYTHON="${PYTHON:-python3}"
if [[ ! -x "$VENV/bin/python" ]]; then
    echo "gpu_setup: creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "gpu_setup: installing torch 2.13.0 (CUDA build from PyPI) and emoface"
"$VENV/bin/python" -m pip install --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install --progress-bar off "torch==2.13.0"
"$VENV/bin/python" -m pip install --progress-bar off -e ".[model,dev]"
"$VENV/bin/python" - <<'PY'
import torch
assert torch.cuda.is_available(), f"torch {torch.__version__} sees no CUDA device"
print(f"gpu_setup: torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
PY

if [[ "$RUN" == 1 ]]; then
    OUT="${OUT:-$PWD}"
    "$VENV/bin/python" benchmarks/gpu_check.py --device cuda --out "$OUT/gpu_check.json"
fi
