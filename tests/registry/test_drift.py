"""A recorded attempt whose experiment's defaults changed since is labelled with what it ran."""
from __future__ import annotations

import copy
import json

from metalearn.registry.drift import ABSENT, describe, drift
from tests.conftest import ROOT
from tests.test_results import _tables_module

RECORD = ROOT / "experiments" / "records" / "fomaml_amazon" / "20261130T175057-657fbf70.json"


def fomaml_record() -> dict:
    return {**json.loads(RECORD.read_text(encoding="utf-8")), "cite": None}


def test_a_record_of_todays_defaults_has_no_drift_whatever_its_seed_and_paths():
    record = fomaml_record()
    assert drift(record["config"], "fomaml_amazon", ()) == {}
    config = copy.deepcopy(record["config"])
    config["algorithm"]["seed"] = config["data"]["seed"] = 7  # seeds are not defaults
    config["data"]["path"] = "/elsewhere/amazon_reviews/arsc"  # nor where the data was
    config["algorithm"]["eval_adapt_check"] = False  # an option recorded off, as today
    del config["algorithm"]["vmap_tasks"]  # an option the attempt's version lacked, off today
    assert drift(config, "fomaml_amazon", ()) == {}
    assert "skip_padding" not in record["config"]["model"]  # recorded before the option, padded
    config["model"]["skip_padding"] = False  # how, not what: the same numbers up to rounding
    assert drift(config, "fomaml_amazon", ()) == {}
    config["model"]["trainable_layers"] = 2  # a model setting that does change what runs
    assert drift(config, "fomaml_amazon", ()) == {"model.trainable_layers": 2}


def test_changed_defaults_are_named_with_the_values_that_ran():
    config = fomaml_record()["config"]
    config["algorithm"]["optimizer"]["lr"] = 0.01
    config["algorithm"]["inner_steps"] = 3
    del config["algorithm"]["eval_inner_steps"]  # today 10: the attempt ran without the option
    changed = drift(config, "fomaml_amazon", ())
    assert set(changed) == {"algorithm.optimizer", "algorithm.inner_steps", "algorithm.eval_inner_steps"}
    assert changed["algorithm.eval_inner_steps"] is ABSENT
    assert describe(changed) == ("no algorithm.eval_inner_steps, algorithm.inner_steps=3, "
                                 "algorithm.optimizer=Adam(lr=0.01)")
    # an override on the command line is part of today's composition too
    assert "algorithm.inner_steps" not in drift(config, "fomaml_amazon", ("algorithm.inner_steps=3",))


def test_a_list_or_mapping_is_named_on_one_line_as_an_override_types_it():
    # a table cell holds one line: YAML's block style broke the meta-test table's row in two
    changed = {"algorithm.eval_score_steps": [0, 1, 5, 10], "data.max_length": 256,
               "model.extra": {"a": 1, "b": [2, 3]}, "data.heldout": ["books", "dvd"]}
    assert describe(changed) == ("algorithm.eval_score_steps=[0,1,5,10], data.max_length=256, "
                                 "model.extra={a:1,b:[2,3]}, data.heldout=[books,dvd]")


def test_tables_never_pool_an_attempt_of_other_defaults_with_the_experiments_own():
    tables = _tables_module()
    today, earlier = fomaml_record(), fomaml_record()
    earlier["id"] = "e" * 8 + earlier["id"][8:]
    earlier["config"]["algorithm"]["optimizer"]["lr"] = 0.01
    for r, value in ((today, 0.8), (earlier, 0.6)):
        for t in r["test_results"]:
            t["value"] = value
    text = tables.tables([today, earlier])
    lines = text.splitlines()
    main = [line for line in lines if "`metalearn train experiment=fomaml_amazon`" in line]
    assert len(main) == 1 and today["id"][:8] in main[0] and "eeeeeeee" not in main[0]
    other = [line for line in lines if line.startswith("| `fomaml_amazon` |")]
    assert len(other) == 1 and "eeeeeeee" in other[0] and today["id"][:8] not in other[0]
    assert "`algorithm.optimizer=Adam(lr=0.01)`" in other[0] and "60.0" in other[0]
