#!/usr/bin/env bash
# Create .venv (if needed) and install emoface with the model, plot and dev extras; PyTorch first,
# the CPU build unless an NVIDIA GPU is present. See scripts/setup.py (EMOFACE_TORCH=auto|cpu|
# cuda|skip chooses the build; Windows: py scripts\setup.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-python3}" scripts/setup.py "$@"
