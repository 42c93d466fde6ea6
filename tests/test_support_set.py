"""experiments/support_set.py: the before/after-adapting table says whose weights each row scored."""
from __future__ import annotations

import sys

from tests.test_result_checkpoints import record
from tests.test_results import _tables_module


def result(metric: str, value: float, shots: int = 1) -> dict:
    return {"group": "hotel", "metric": metric, "value": value, "ci95": 0.02, "episodes": 20,
            "shots": shots, "queries": 5}


def test_rows_name_meta_trained_weights_their_checkpoint_and_the_model_as_built():
    _tables_module()
    support = sys.modules["support_set"]
    trained = record("t", ckpt="/runs/t/checkpoints/best.ckpt",
                     results=(result("acc", 0.9, 5), result("acc@0", 0.4, 5), result("acc@10", 0.9, 5)))
    meta_test = record("m", ckpt="/runs/t/checkpoints/best.ckpt", overrides=("train=false",),
                       results=(result("acc@0", 0.35), result("acc@10", 0.7)))
    built = record("b", overrides=("train=false",), results=(result("acc@0", 0.33), result("acc@1", 0.5)))
    built["config"]["train"] = False
    no_before = record("n", results=(result("acc@1", 0.5), result("acc@10", 0.6)))  # no 0: no row
    lines = support.table([trained, meta_test, built, no_before]).splitlines()
    cells = [[c.strip() for c in line.split("|")[3:9]] for line in lines[2:]]
    assert cells == [
        ["1", "meta-trained (`maml_omniglot`, its checkpoint)", "acc", "35.0 ± 2.0", "70.0 ± 2.0", "10"],
        ["1", "no meta-training (the model as built)", "acc", "33.0 ± 2.0", "50.0 ± 2.0", "1"],
        ["5", "meta-trained (`maml_omniglot`)", "acc", "40.0 ± 2.0", "90.0 ± 2.0", "10"]]


def test_episodes_with_shuffled_labels_are_their_own_rows():
    _tables_module()
    support = sys.modules["support_set"]
    plain = record("p", results=(result("acc@0", 0.8), result("acc@10", 0.8)))
    shuffled = record("s", results=(result("acc@0", 0.5), result("acc@10", 0.7)))
    shuffled["config"]["data"] = {"shuffle_labels": True}
    benches = [line.split("|")[1].strip() for line in support.table([plain, shuffled]).splitlines()[2:]]
    assert benches == ["omniglot", "omniglot, labels shuffled per episode"]
