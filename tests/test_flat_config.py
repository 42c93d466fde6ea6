"""A nested config as dotted keys (TensorBoard's hparams, the registry's config differences)."""
from __future__ import annotations

from metalearn.flat_config import flatten


def test_nested_keys_are_dotted_and_lists_and_empty_nodes_stay_whole() -> None:
    config = {"seed": 3, "data": {"shots": 5, "heldout": ["books", "dvd"], "extra": {}},
              "algorithm": {"optimizer": {"lr": 0.1}}}
    assert flatten(config) == {"seed": 3, "data.shots": 5, "data.heldout": ["books", "dvd"],
                               "data.extra": {}, "algorithm.optimizer.lr": 0.1}


def test_a_leaf_flattens_to_nothing_without_a_key() -> None:
    assert flatten(7) == {} and flatten(7, "x") == {"x": 7}
