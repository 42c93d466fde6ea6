"""Omniglot experiments: every one composes and builds with debug=fast. Each runs end to end
through run.py in tests/test_debug_numbers.py, which checks every scalar it logs."""
from __future__ import annotations

import pytest

from metalearn.train import build
from tests.conftest import compose_config

EXPERIMENTS = {  # experiment -> the algorithm config it needs
    "reptile_omniglot": "reptile", "reptile_omniglot_lake": "reptile",
    "fomaml_omniglot": "fomaml", "maml_omniglot": "maml",
    "anil_omniglot": "anil", "protonet_omniglot": "protonet",
    "finetune_omniglot": "finetune", "pretrained_omniglot": "finetune",
}


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_omniglot_experiment_builds_with_debug_fast(experiment, tmp_path):
    cfg = compose_config([f"experiment={experiment}", "debug=fast",
                          f"paths.log_dir={tmp_path}"], tmp_path / "out")
    assert cfg.data._target_.endswith("OmniglotEpisodes") and "max_length" not in cfg.data
    assert cfg.data.path.endswith("/omniglot")
    model = build(cfg.model)
    learner = build(cfg.algorithm, model=model, objective=build(cfg.objective))
    assert type(model).__name__ == "Conv4" and model.top.head.out_features == cfg.data.ways
    assert learner.model is model


def test_debug_fast_keeps_the_text_settings(tmp_path):
    cfg = compose_config(["experiment=reptile_amazon", "debug=fast"], tmp_path)
    assert cfg.model.random_init and cfg.model.config_overrides.hidden_size == 32
    assert cfg.data.max_length == 64 and cfg.data.steps_per_epoch == 2
    layers = compose_config(["experiment=reptile_amazon", "debug=fast", "model=layers"], tmp_path)
    assert layers.model._target_.endswith("LayerModel") and "random_init" not in layers.model
