#!/usr/bin/env bash
# Install everything the tests need into .venv (CPU torch first: far smaller than CUDA) and run them.
# Usage: bash scripts/test.sh [pytest args]
# HFGE_TORCH_INDEX=https://download.pytorch.org/whl/cpu picks the CPU wheel index on machines where
# PyPI's default torch is a CUDA build; GPU users can keep the CUDA torch they already have.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q --disable-pip-version-check ${HFGE_TORCH_INDEX:+--index-url "$HFGE_TORCH_INDEX"} "torch==2.13.0"
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
exec .venv/bin/python -m pytest "$@"
