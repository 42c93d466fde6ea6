"""Omniglot experiments: every one composes and builds with debug=fast; one runs end to end."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metalearn.train import build
from tests.conftest import ROOT, compose_config

EXPERIMENTS = {  # experiment -> the algorithm config it needs
    "reptile_omniglot": "reptile", "reptile_omniglot_lake": "reptile",
    "fomaml_omniglot": "fomaml", "maml_omniglot": "maml",
    "anil_omniglot": "anil", "protonet_omniglot": "protonet",
}


def needs(algorithm: str):
    """Skip until conf/algorithm/<algorithm>.yaml exists (anil, protonet: another branch)."""
    return pytest.mark.skipif(not (ROOT / "conf" / "algorithm" / f"{algorithm}.yaml").exists(),
                              reason=f"conf/algorithm/{algorithm}.yaml is not in this branch")


@pytest.mark.parametrize("experiment", [pytest.param(e, marks=needs(a))
                                        for e, a in EXPERIMENTS.items()])
def test_omniglot_experiment_builds_with_debug_fast(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}", "debug=fast",
                          f"paths.log_dir={tmp_path}"], tmp_path / "out")
    assert cfg.data._target_.endswith("OmniglotEpisodes") and "max_length" not in cfg.data
    assert cfg.data.path.endswith("/omniglot")
    model = build(cfg.model)
    learner = build(cfg.algorithm, model=model)
    assert type(model).__name__ == "Conv4" and model.top.head.out_features == cfg.data.ways
    assert learner.model is model


def test_debug_fast_keeps_the_text_settings(tmp_path):
    cfg = compose_config(["experiment=reptile_amazon", "debug=fast"], tmp_path)
    assert cfg.model.random_init and cfg.model.config_overrides.hidden_size == 32
    assert cfg.data.max_length == 64 and cfg.data.steps_per_epoch == 2
    layers = compose_config(["experiment=reptile_amazon", "debug=fast", "model=layers"], tmp_path)
    assert layers.model._target_.endswith("LayerModel") and "random_init" not in layers.model


@pytest.mark.slow
def test_run_py_reptile_omniglot_debug_fast_end_to_end(tmp_path):
    # This checkout's code, whatever else is installed (a relative PYTHONPATH breaks in cwd).
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PROJECT_ROOT=str(ROOT), PYTHONPATH=path)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "experiment=reptile_omniglot", "debug=fast",
         f"paths.log_dir={tmp_path}", "registry=off", "callbacks.rich_progress_bar=null"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (version,) = tmp_path.glob("tensorboard/reptile_omniglot/version_*")
    acc = EventAccumulator(str(version))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"test/omniglot/acc", "test/acc", "val/acc", "train/query_acc"} <= tags
    assert list(tmp_path.glob("reptile_omniglot/runs/*/checkpoints/last.ckpt"))
