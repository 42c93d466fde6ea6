"""examples/make_topics.py and benchmark=topics: the topic table from the ARSC files, each
meta-tested topic unseen in meta-training, read by data=hf_text as 2-way episodes."""
from __future__ import annotations

import csv
import itertools

import pytest

from examples.make_topics import TEST, VAL, main, rows
from metalearn.data.hf_text import HFTextEpisodes
from metalearn.instantiate import build
from tests.conftest import ROOT, compose_config

TABLE = ROOT / "examples" / "topics.csv"


def fake_arsc(folder, domains, per_file=4):
    folder.mkdir()
    for d in domains:
        for task, split in itertools.product(("t2", "t4"), ("train", "test")):
            lines = [f"{d} {split} review {i}\t{'1' if i % 2 else '-1'}" for i in range(per_file)]
            (folder / f"{d}.{task}.{split}").write_text("\n".join(lines) + "\n")
    return folder


def test_the_table_takes_distinct_t2_reviews_and_puts_the_target_domains_apart(tmp_path):
    arsc = fake_arsc(tmp_path / "arsc", [*TEST, *VAL, "apparel", "baby_food"])
    out = rows(arsc, per_topic=6, chars=300, seed=0)
    assert len(out) == 10 * 6
    assert all("t4" not in r["text"] for r in out) and len({(r["topic"], r["text"]) for r in out}) == 60
    family = {r["topic"]: r["topics"] for r in out}
    assert {t for t, f in family.items() if f == "target_topics"} == set(TEST)
    assert {t for t, f in family.items() if f == "validation_topics"} == set(VAL)
    assert {t for t, f in family.items() if f == "training_topics"} == {"apparel", "baby_food"}
    assert out == rows(arsc, per_topic=6, chars=300, seed=0)  # a fixed draw
    with pytest.raises(ValueError, match="apparel has 8 distinct t2 reviews, fewer than --per-topic 9"):
        rows(arsc, per_topic=9, chars=300, seed=0)
    with pytest.raises(ValueError, match=r"lacks the t2 files of \['books'\]"):
        rows(fake_arsc(tmp_path / "partial", [*TEST[1:], *VAL]), per_topic=2, chars=300, seed=0)
    main(["--arsc", str(arsc), "--out", str(tmp_path / "t.csv"), "--per-topic", "6"])
    with (tmp_path / "t.csv").open() as f:
        assert list(csv.DictReader(f)) == out


def test_the_committed_table_is_what_the_script_writes_from_the_shared_files(tmp_path):
    arsc = ROOT.parent / "shared" / "data" / "amazon_reviews" / "arsc"
    if not arsc.is_dir():
        pytest.skip("no ../shared/data/amazon_reviews/arsc beside the checkout")
    main(["--arsc", str(arsc), "--out", str(tmp_path / "t.csv")])
    assert (tmp_path / "t.csv").read_bytes() == TABLE.read_bytes()


def test_benchmark_topics_meta_tests_2_way_episodes_of_topics_unseen_in_meta_training(tmp_path):
    cfg = compose_config(["experiment=protonet_topics", f"paths.cache_dir={tmp_path}"], tmp_path / "out")
    data = build(cfg.data)
    assert isinstance(data, HFTextEpisodes) and cfg.model.pretrained == "all-MiniLM-L6-v2"
    index = data.read_index()
    plan = data.splits.plan(index, data.episodes)
    assert plan.train_sampler.families == ["training_topics"]
    assert {s.family for s in plan.val_specs} == {"validation_topics"} and len(plan.val_specs) == 60
    assert {s.family for s in plan.test_specs} == {"target_topics"} and len(plan.test_specs) == 100
    assert all(len(s.classes) == 2 for s in plan.val_specs + plan.test_specs)
    tested = {str(index.label[i]) for s in plan.test_specs for i in s.support + s.query}
    trained = {str(index.label[i]) for i in range(len(index.label)) if index.family[i] == "training_topics"}
    assert tested == set(TEST) and not tested & trained and len(trained) == 17
