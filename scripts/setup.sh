#!/usr/bin/env bash
# Install metalearn (editable) into ./.venv, or into the virtual environment already active.
#   bash scripts/setup.sh        # to run experiments
#   bash scripts/setup.sh test   # also what the tests need (the `dev` extra)
# torch: 2.13.0 is installed only where no torch is importable, so a build you already have
# (CUDA or CPU) stays. Set TORCH_INDEX_URL to take it from PyTorch's own index, e.g.
# https://download.pytorch.org/whl/cpu for the CPU build (the default index's Linux build is
# the multi-GB CUDA one).
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
  "$py" -m pip install -q ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} "torch==2.13.0"
fi
if [ "${1:-}" = "test" ]; then
  "$py" -m pip install -q -e ".[dev]"
  # The browser tests (the API docs, the web pages) need Debian's chromium and chromium-driver;
  # best effort (root, apt, Debian only; about a minute): where they cannot be installed, those
  # tests skip and say why.
  if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; } && [ "$(id -u)" = 0 ] \
     && command -v apt-get >/dev/null && grep -qs '^ID=debian' /etc/os-release; then
    apt_log="${TMPDIR:-/tmp}/metalearn-chromium-apt.log"
    if DEBIAN_FRONTEND=noninteractive timeout 900 sh -c \
         'apt-get update -qq && apt-get install -y -qq chromium chromium-driver' >"$apt_log" 2>&1; then
      echo "chromium and chromium-driver installed for the browser tests"
      rm -f "$apt_log"
    else
      echo "chromium or chromium-driver could not be installed (apt log: $apt_log); the browser tests will skip"
    fi
  fi
else
  "$py" -m pip install -q -e .
fi
"$py" -c "import metalearn, torch; print('metalearn', metalearn.__version__, 'torch', torch.__version__)"
