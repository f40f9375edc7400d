#!/usr/bin/env bash
# Install exactly what the tests need into .venv, from the lock of exact versions (requirements/test.lock), and run
# the tests on every core (pytest-xdist). A new upstream release never changes what this installs: bring the
# project to new releases with `bash scripts/lock.sh` and `scripts/refresh_transformers.py`.
# Usage: bash scripts/test.sh [pytest args]        (HFGE_TEST_WORKERS=1 runs them in one process)
# HFGE_TORCH_INDEX=https://download.pytorch.org/whl/cpu picks the CPU wheel index on machines where PyPI's default
# torch is a CUDA build (the lock's torch pin matches either build).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
LOCK=requirements/test.lock
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)
[ -x .venv/bin/python ] || "$PY" -m venv .venv
"${pip[@]}" "$(grep '^pip==' "$LOCK")"
torch=$(grep '^torch==' "$LOCK")
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '${torch#torch==}')" 2>/dev/null; then
  "${pip[@]}" ${HFGE_TORCH_INDEX:+--index-url "$HFGE_TORCH_INDEX"} "$torch"
fi
"${pip[@]}" -r "$LOCK"
"${pip[@]}" --no-deps -e .
exec .venv/bin/python -m pytest -n "${HFGE_TEST_WORKERS:-auto}" "$@"
