#!/usr/bin/env bash
# Create .venv (if needed) and install emoface with the model, plot and dev extras.
# CPU PyTorch is installed first and pinned: a bare "torch" requirement would pull a multi-GB
# CUDA build. For a GPU machine, install the CUDA build of torch yourself before running this.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${EMOFACE_TORCH_SPEC:-torch==2.13.0}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    .venv/bin/python -m pip install -q "$TORCH_SPEC"
fi
.venv/bin/python -m pip install -q -e ".[model,plot,dev]"
echo "emoface installed in $(pwd)/.venv"
