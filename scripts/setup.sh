#!/usr/bin/env bash
# Install metalearn (editable) into ./.venv, or into the virtual environment already active.
#   bash scripts/setup.sh        # to run experiments
#   bash scripts/setup.sh test   # also what the tests need
# torch: 2.13.0 (CPU build) is installed only where no torch is importable, so a CUDA build
# you already have stays; a bare `torch>=2.3` would pull a multi-GB CUDA build instead.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${VIRTUAL_ENV:-}" ]; then
  py=python
else
  [ -x .venv/bin/python ] || python3 -m venv .venv
  py=.venv/bin/python
fi
"$py" -m pip install -q --upgrade pip
if ! "$py" -c "import torch" 2>/dev/null; then
  "$py" -m pip install -q "torch==2.13.0"
fi
if [ "${1:-}" = "test" ]; then
  "$py" -m pip install -q -e ".[test]"
else
  "$py" -m pip install -q -e .
fi
"$py" -c "import metalearn, torch; print('metalearn', metalearn.__version__, 'torch', torch.__version__)"
