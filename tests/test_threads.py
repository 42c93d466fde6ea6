"""The `threads` key and the OpenMP wait policy: one torch thread unless asked, idle threads
that sleep, both set where a run starts and undone where `train(cfg)` returns."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import metalearn.run as run_module
from metalearn.threads import limited_threads, prefer_passive_wait, resolve_threads
from metalearn.train import train
from tests.conftest import ROOT


@pytest.mark.parametrize(("setting", "env", "expected"), [
    ("auto", {}, 1),
    ("auto", {"OMP_NUM_THREADS": "3"}, 3),
    ("auto", {"OMP_NUM_THREADS": ""}, 1),
    (2, {"OMP_NUM_THREADS": "1"}, 2),   # the config's own number wins over the environment
    (None, {}, None),                    # torch's own default
])
def test_resolve_threads(setting, env, expected):
    assert resolve_threads(setting, env) == expected


@pytest.mark.parametrize(("setting", "env", "message"), [
    (0, {}, "threads must be auto, a positive integer or null, got 0"),
    (-2, {}, "got -2"),
    (True, {}, "got True"),
    ("many", {}, "got 'many'"),
    (1.5, {}, "got 1.5"),
    ("auto", {"OMP_NUM_THREADS": "two"}, "threads=auto reads $OMP_NUM_THREADS, which is 'two'"),
    ("auto", {"OMP_NUM_THREADS": "0"}, "which is '0'"),
])
def test_a_bad_threads_value_is_named(setting, env, message):
    with pytest.raises(ValueError, match="threads") as err:
        resolve_threads(setting, env)
    assert message in str(err.value)


def test_passive_wait_unless_the_user_chose(monkeypatch):
    env: dict[str, str] = {}
    prefer_passive_wait(env)
    assert env == {"OMP_WAIT_POLICY": "PASSIVE"}
    for name, value in [("OMP_WAIT_POLICY", "ACTIVE"), ("GOMP_SPINCOUNT", "10000"), ("KMP_BLOCKTIME", "200")]:
        env = {name: value}
        prefer_passive_wait(env)
        assert env == {name: value}


def test_limited_threads_sets_torch_and_the_environment_then_restores_them(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    with limited_threads(2) as count:
        assert count == 2
        assert torch.get_num_threads() == 2 and os.environ["OMP_NUM_THREADS"] == "2"
    assert torch.get_num_threads() == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    monkeypatch.delenv("OMP_NUM_THREADS")
    with limited_threads("auto") as count:
        assert count == 1 and os.environ["OMP_NUM_THREADS"] == "1"
    assert "OMP_NUM_THREADS" not in os.environ
    with limited_threads(None) as count:  # torch's default: nothing touched
        assert count is None and "OMP_NUM_THREADS" not in os.environ


def test_train_runs_on_the_configured_threads_and_refuses_a_bad_value_first(make_cfg, monkeypatch):
    seen = []
    monkeypatch.setattr("metalearn.train._train", lambda cfg: seen.append(torch.get_num_threads()) or {})
    train(make_cfg("registry=off", "threads=2"))
    assert seen == [2] and torch.get_num_threads() == 1
    with pytest.raises(ValueError, match="threads must be auto, a positive integer or null, got 'lots'"):
        train(make_cfg("registry=off", "threads=lots"))
    assert seen == [2]  # nothing ran


def test_the_shipped_default_is_auto(make_cfg):
    assert make_cfg().threads == "auto"


def test_the_entry_point_sets_the_wait_policy_before_torch_loads(monkeypatch):
    # The entry module must not load torch itself, or OpenMP would have read its settings already.
    code = "import sys, metalearn.run, metalearn.cli; assert 'torch' not in sys.modules, 'torch loaded'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, timeout=120)
    for name in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME"):
        monkeypatch.setenv(name, "")  # so that monkeypatch restores each, set or not, afterwards
        monkeypatch.delenv(name)
    seen = []
    monkeypatch.setattr(run_module, "main", lambda: seen.append(os.environ.get("OMP_WAIT_POLICY")))
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    run_module.launch(["experiment=maml_sinusoid"])
    assert seen == ["PASSIVE"]
