"""What a run writes when its output goes to a file, as `python run.py ... > log 2>&1` does."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def redirected_run(tmp_path_factory) -> str:
    """stdout and stderr of `run.py experiment=reptile_amazon debug=fast`, neither a terminal."""
    tmp: Path = tmp_path_factory.mktemp("redirected")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=reptile_amazon", "debug=fast",
         f"paths.log_dir={tmp}", "registry=off"],
        cwd=tmp, env=dict(os.environ, PROJECT_ROOT=str(ROOT)), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc.stdout


def test_progress_is_plain_lines_as_it_goes(redirected_run):
    out = redirected_run
    assert "[metalearn.progress][INFO] - step 1/4 (25%), " in out  # the first step, at once
    assert "[metalearn.progress][INFO] - training: 4 steps in " in out
    assert "[metalearn.progress][INFO] - meta-validation at step 2: 6 episodes in " in out
    assert "[metalearn.progress][INFO] - meta-validation at step 4: 6 episodes in " in out
    assert "[metalearn.progress][INFO] - meta-test: 18 episodes in " in out
    for bar in ("Epoch ", "Validation ━", "Testing ━", "/-2"):  # no frame of a bar
        assert bar not in out


def test_no_message_a_user_cannot_act_on(redirected_run):
    # Lightning's LeafSpec FutureWarning and its litlogger tip (the limit_val_batches note and the
    # datasets bars do not come up in this run: tests/test_noise.py has them)
    for noise in ("LeafSpec", "litlogger", "💡"):
        assert noise not in redirected_run
    assert "GPU available: False" in redirected_run  # Lightning's other notes still show
