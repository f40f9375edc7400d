#!/usr/bin/env bash
# Regenerate requirements/test.lock: the newest releases the package's own ranges admit (the `test` extra),
# resolved in a fresh virtual environment and frozen to exact versions. The tests install from the lock, so a new
# upstream release never breaks a fresh clone; bring the project to new releases by running this, then
# `scripts/refresh_transformers.py` (re-records what depends on the transformers version) and the tests.
# Usage: bash scripts/lock.sh            (HFGE_TORCH=2.13.0 by default: the torch the coverage traces were recorded with)
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH=${HFGE_TORCH:-$(sed -n 's/^torch==//p' requirements/test.lock 2>/dev/null || true)}
TORCH=${TORCH:-2.13.0}
PY=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$PY" -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip install -q --disable-pip-version-check)
"${pip[@]}" --upgrade pip
"${pip[@]}" ${HFGE_TORCH_INDEX:+--index-url "$HFGE_TORCH_INDEX"} "torch==$TORCH"
"${pip[@]}" -e '.[test]'
{
  echo "# Exact versions of everything the tests import, resolved from pyproject.toml's 'test' extra."
  echo "# Regenerate with: bash scripts/lock.sh   (installed by scripts/test.sh; the package's own requirements stay ranges)"
  echo "# python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())')"
  echo "pip==$("$tmp/venv/bin/python" -c 'import pip; print(pip.__version__)')"
  # A local version label (+cpu, +cu126) names the build, not the release: the pin matches either build.
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable --disable-pip-version-check | sed -E 's/^(torch==[^+]+)\+.*/\1/'
} > requirements/test.lock
echo "requirements/test.lock: $(grep -c '==' requirements/test.lock) pins (transformers $(sed -n 's/^transformers==//p' requirements/test.lock), torch $TORCH)"
