#!/usr/bin/env bash
# Do the declared minimum versions really work? In a fresh virtual environment: torch==2.13.0,
# then metalearn with every `>=X` of setup.cfg (core and what the `dev` extra pulls in) pinned
# to `==X`, then the fast tests (`-m "not slow"`) on the committed tree (git HEAD).
# Not part of CI: it downloads old releases and takes 20 minutes or more on 2 CPU cores.
#   bash scripts/check_minimums.sh [WORK_DIR]   # default: a new folder under ${TMPDIR:-/tmp}
# Environment: PYTHON (default python3); TORCH_INDEX_URL to take torch from PyTorch's own index
# (e.g. https://download.pytorch.org/whl/cpu) rather than the default index's build.
# Leaves in WORK_DIR: minimums.txt (the pins), freeze.txt (what got installed), pytest.log,
# and summary.txt (commit, date, Python, the pytest result line).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$(mktemp -d "${TMPDIR:-/tmp}/metalearn-minimums.XXXXXX")}
mkdir -p "$work/tree"
work=$(cd "$work" && pwd)
commit=$(git -C "$repo" rev-parse --short HEAD)
if [ -n "$(git -C "$repo" status --porcelain --untracked-files=no)" ]; then
  echo "note: uncommitted changes are not checked; this tests $commit" >&2
fi
git -C "$repo" archive --format=tar HEAD | tar -x -C "$work/tree"
# Tests read ../shared/data beside the checkout where it exists: the same, beside the copy.
if [ -d "$repo/../shared" ] && [ ! -e "$work/shared" ]; then
  ln -s "$(cd "$repo/../shared" && pwd)" "$work/shared"
fi

"${PYTHON:-python3}" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q --upgrade pip
torch_index=()
if [ -n "${TORCH_INDEX_URL:-}" ]; then torch_index=(--index-url "$TORCH_INDEX_URL"); fi
"$py" -m pip install -q "${torch_index[@]}" "torch==2.13.0"
# The pins, as constraints; torch stays the one just installed.
"$py" "$work/tree/scripts/pin_minimums.py" "$work/tree/setup.cfg" dev \
  | grep -v '^torch==' >"$work/minimums.txt"
echo "torch==2.13.0" >>"$work/minimums.txt"
"$py" -m pip install -q --prefer-binary -c "$work/minimums.txt" "$work/tree[dev]"
"$py" -m pip freeze >"$work/freeze.txt"

# The data the configs would find beside this checkout (resolvers.data_dir's rule).
if [ -z "${METALEARN_DATA:-}" ]; then
  if [ -d "$repo/../shared/data" ]; then
    METALEARN_DATA=$(cd "$repo/../shared/data" && pwd)
  else
    METALEARN_DATA="$repo/data"
  fi
  export METALEARN_DATA
fi

cd "$work/tree"
set +e
OMP_NUM_THREADS=1 "$py" -m pytest -m "not slow" -q -rfEs -p no:cacheprovider >"$work/pytest.log" 2>&1
status=$?
set -e
{
  echo "commit: $commit"
  echo "date: $(date -u +%Y-%m-%d)"
  echo "python: $("$py" -c 'import platform; print(platform.python_version())')"
  echo "pytest exit status: $status"
  tail -n 1 "$work/pytest.log"
} | tee "$work/summary.txt"
exit "$status"
