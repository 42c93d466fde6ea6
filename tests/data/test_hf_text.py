"""data=hf_text: families of tasks from a CSV the tests write, and the ARSC benchmark's files through it."""
from __future__ import annotations

import csv
import logging
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from metalearn.data.hf_text import HFTextEpisodes
from metalearn.data.review_datamodule import ReviewEpisodes, ReviewRows
from metalearn.data.reviews import review_index
from metalearn.train import build
from tests.conftest import ROOT, compose_config

ARSC = ROOT.parent / "shared" / "data" / "amazon_reviews" / "arsc"
# Three families (customers), string labels (intents), uneven class sizes; `close` is too small
# for K + L = 4 and must be left out of training with a warning.
SIZES = {"bank": {"balance": 14, "transfer": 11, "lost_card": 20, "close": 2},
         "pizza": {"order": 12, "complaint": 16},
         "hotel": {"booking": 13, "checkout": 10, "spa": 12}}
WORDS = "alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima".split()


def rows(sizes: dict = SIZES) -> list[dict]:
    out = []
    for family, classes in sizes.items():
        for cls, n in classes.items():
            for i in range(n):
                out.append({"text": f"{family} {cls} {WORDS[i % len(WORDS)]} {i}",
                            "intent": cls, "customer": family})
    # interleave so no family or class is a contiguous block of rows
    return [out[i] for i in np.random.default_rng(0).permutation(len(out))]


def write_csv(path: Path, records: list[dict]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)
    return path


@pytest.fixture(scope="module")
def csv_file(tmp_path_factory) -> Path:
    return write_csv(tmp_path_factory.mktemp("intents") / "intents.csv", rows())


def make(csv: Path, cache: Path, **kwargs) -> HFTextEpisodes:
    args = dict(data_files=str(csv), label_column="intent", task_column="customer",
                heldout=["hotel"], shots=2, queries=2, num_labels=4, val_row_fraction=0.4,
                val_episodes=2, test_episodes=3, max_length=32, cache_dir=str(cache))
    return HFTextEpisodes(**{**args, **kwargs})


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def dm(csv_file, cache) -> HFTextEpisodes:
    d = make(csv_file, cache)
    d.setup("fit")
    return d


def row_of(dm: HFTextEpisodes, i: int) -> tuple[str, str]:
    return dm.data[i]["family"], dm.data[i]["label"]


def test_episodes_balanced_disjoint_and_of_their_family_and_class(dm):
    widths = Counter()
    for step in range(30):
        for task in range(4):
            spec = dm.train_sampler.train_episode(dm.episodes.seed, step, task)
            ep = dm.build(spec)
            widths[spec.family, ep.ways] += 1
            assert ep.support_y.tolist() == sorted(ep.support_y.tolist())  # fixed label order
            assert Counter(spec.support_labels) == {k: 2 for k in range(ep.ways)}
            assert Counter(spec.query_labels) == {k: 2 for k in range(ep.ways)}
            assert not set(spec.support) & set(spec.query)
            names = list(dm.train_sampler.pools[spec.family])
            for i, lab in zip(spec.support + spec.query, spec.support_labels + spec.query_labels, strict=False):
                assert row_of(dm, i) == (spec.family, names[lab])
            assert ep.support_x["input_ids"].shape[0] == 2 * ep.ways
    # a 3-way and a 2-way family in one run; the held-out family never drawn in training
    assert set(widths) == {("bank", 3), ("pizza", 2)}
    assert list(dm.train_sampler.pools["bank"]) == ["balance", "lost_card", "transfer"]
    assert {s.family for s in dm.test_specs} == {"hotel"} and dm.build(dm.test_specs[0]).ways == 3
    assert {s.family for s in dm.val_specs} == {"bank", "pizza"}


def test_meta_validation_rows_are_not_training_rows(dm):
    train = {int(i) for p in dm.train_sampler.pools.values() for r in p.values() for i in r}
    val = {int(i) for p in dm.plan.val_sampler.pools.values() for r in p.values() for i in r}
    assert train and val and not train & val


def test_training_loader_never_draws_the_heldout_family(dm):
    loader = dm.train_dataloader()
    for start in (0, 50, 100):
        loader.batch_sampler.first_step = lambda start=start: start
        for batch in loader:
            assert all(ep.family != "hotel" and ep.group != "hotel" for ep in batch)


def test_small_class_is_named_in_a_warning_and_left_out(csv_file, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="metalearn.data.hf_text"):
        d = make(csv_file, tmp_path)
        d.preflight()
    assert "meta-training leaves out classes with fewer than K + L = 4 examples: bank/close (1)" in caplog.text
    d.setup("fit")
    assert "close" not in d.train_sampler.pools["bank"]


def test_deterministic_per_seed_and_evaluation_fixed_by_eval_seed(dm, csv_file, cache):
    again = make(csv_file, cache)
    again.setup("fit")
    assert not again.tokenized_now  # the tokenized rows came from the disk cache
    episodes = [(s, t) for s in range(10) for t in range(4)]
    same = [again.train_sampler.train_episode(0, s, t) for s, t in episodes]
    assert same == [dm.train_sampler.train_episode(0, s, t) for s, t in episodes]
    other = make(csv_file, cache, seed=5)
    other.setup("fit")
    assert [other.train_sampler.train_episode(5, s, t) for s, t in episodes] != same
    assert other.val_specs == dm.val_specs and other.test_specs == dm.test_specs
    a, b = dm.build(dm.test_specs[0]), again.build(again.test_specs[0])
    assert torch.equal(a.query_x["input_ids"], b.query_x["input_ids"])


def test_shuffled_labels_permute_classes_per_episode(csv_file, tmp_path):
    d = make(csv_file, tmp_path, shuffle_labels=True, ways=2, num_labels=2)
    d.setup("fit")
    first = Counter()
    for task in range(40):
        spec = d.train_sampler.train_episode(0, 0, task)
        assert len(set(spec.support_labels)) == 2 and len(set(spec.classes)) == 2
        first[spec.classes[0]] += 1
    assert len(first) >= 4  # label 0 stands for different classes in different episodes


def test_heldout_by_seeded_fraction(csv_file, tmp_path):
    a = make(csv_file, tmp_path, heldout=None, test_fraction=0.3, split_seed=3).preflight()
    b = make(csv_file, tmp_path, heldout=None, test_fraction=0.3, split_seed=3).preflight()
    assert a == b and len(a.test_groups) == 1
    assert not set(a.test_groups) & set(a.train_groups)
    assert set(a.groups) == {"bank", "pizza", "hotel"}


def test_integer_labels_keep_numeric_order_and_splits_come_from_a_column(tmp_path):
    records = []
    for fam in ("a", "b", "c"):
        for label in (2, 10):
            for i in range(12):
                records.append({"text": f"{fam} {label} {i}", "label": label, "task": fam,
                                "part": "train" if i < 8 else "dev"})
    path = write_csv(tmp_path / "ints.csv", records)
    d = HFTextEpisodes(data_files=str(path), split_column="part", heldout=["c"], shots=1,
                       queries=2, max_length=16, cache_dir=str(tmp_path / "cache"))
    d.setup("fit")
    assert list(d.train_sampler.pools["a"]) == ["2", "10"]  # 2 < 10: numeric order
    parts = d.data["split"]
    assert all(parts[i] == "train" for p in d.train_sampler.pools.values()
               for r in p.values() for i in r)
    assert all(parts[i] == "dev" for s in d.val_specs for i in s.support + s.query)


def test_separate_files_per_split(tmp_path):
    for part, n in (("train", 9), ("dev", 4)):
        write_csv(tmp_path / f"{part}.csv",
                  [{"text": f"{f} {c} {i} {part}", "label": c, "task": f}
                   for f in ("x", "y", "z") for c in ("p", "q") for i in range(n)])
    d = HFTextEpisodes(data_files={"train": str(tmp_path / "train.csv"),
                                   "dev": str(tmp_path / "dev.csv")},
                       heldout=["z"], shots=1, queries=2, max_length=16,
                       cache_dir=str(tmp_path / "cache"))
    d.setup("fit")
    texts = d.data["split"]
    assert {texts[i] for s in d.val_specs for i in s.support + s.query} == {"dev"}
    assert {texts[i] for p in d.train_sampler.pools.values() for r in p.values() for i in r} == {"train"}


# ---- bad input: clear messages before anything is tokenized ------------------------------------
def test_missing_column_lists_the_columns_there_are(csv_file, tmp_path):
    d = make(csv_file, tmp_path, task_column="product")
    with pytest.raises(ValueError, match=r"task_column 'product' is not a column .*"
                                         r"its columns are: text, intent, customer"):
        d.preflight()
    with pytest.raises(ValueError, match="its columns are: text, intent, customer"):
        d.setup("fit")


def test_a_row_without_a_family_is_named(tmp_path):
    records = rows()
    records[7]["customer"] = ""
    path = write_csv(tmp_path / "gap.csv", records)
    with pytest.raises(ValueError, match=r"task_column 'customer' is empty on 1 row.*row 7"):
        make(path, tmp_path).preflight()


def test_a_family_without_examples_in_the_meta_test_splits_is_an_error(tmp_path):
    records = [{**r, "part": "dev" if r["customer"] == "hotel" else "train"} for r in rows()]
    path = write_csv(tmp_path / "split.csv", records)
    with pytest.raises(ValueError, match=r"meta-test group\(s\) \['hotel'\] have no family"):
        make(path, tmp_path, split_column="part", test_splits=["train"]).preflight()


def test_unknown_meta_test_family_is_named_with_the_ones_there_are(csv_file, tmp_path):
    with pytest.raises(ValueError, match=r"data.heldout names \['spa_resort'\], not groups .*"
                                         r"bank, hotel, pizza"):
        make(csv_file, tmp_path, heldout=["spa_resort"]).preflight()


def test_too_small_class_named_for_meta_test_is_an_error(csv_file, tmp_path):
    with pytest.raises(ValueError, match=r"meta-test cannot use data.heldout's .*bank/close \(2\)"):
        make(csv_file, tmp_path, heldout=["bank"]).preflight()


def test_head_narrower_than_the_widest_family_is_refused(csv_file, tmp_path):
    with pytest.raises(ValueError, match=r"'bank' gives 3-way episodes .* data.num_labels=3"):
        make(csv_file, tmp_path, num_labels=2).preflight()


def test_no_data_named(tmp_path):
    with pytest.raises(ValueError, match="data.data_files or data.path"):
        HFTextEpisodes(cache_dir=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no such file"):
        HFTextEpisodes(data_files=str(tmp_path / "none.csv"), cache_dir=str(tmp_path))


def test_an_empty_or_broken_data_file_is_refused_by_name_before_reading(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=r"empty\.csv: an empty CSV file"):
        HFTextEpisodes(data_files=str(empty), cache_dir=str(tmp_path))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"text": "a", "label": 1}\n{"text": \n')
    with pytest.raises(ValueError, match=r"broken\.jsonl: line 2"):
        HFTextEpisodes(data_files=str(broken), cache_dir=str(tmp_path))


# ---- the Amazon benchmark's files through data=hf_text --------------------------------------------
def amazon_and_hf_text(tmp_path: Path) -> tuple[ReviewEpisodes, HFTextEpisodes]:
    """data=amazon as run.py composes it, and data=hf_text on the same ARSC files (`layout:
    arsc`): a family per (domain, task), grouped by domain, the same domains, held-out domains,
    splits and episode settings."""
    cfg = compose_config(["experiment=reptile_amazon", f"paths.cache_dir={tmp_path}"],
                         tmp_path / "out").data
    episode = {k: cfg[k] for k in ("shots", "queries", "meta_batch_size", "steps_per_epoch",
                                   "val_episodes", "test_episodes", "seed", "eval_seed")}
    hf = HFTextEpisodes(path=cfg.path, layout="arsc", task_column=["domain", "task"],
                        group_column="domain", split_column="split", groups=list(cfg.domains),
                        heldout=list(cfg.heldout), train_splits=list(cfg.train_splits),
                        val_splits=list(cfg.val_splits), ways=2, tokenizer=cfg.tokenizer,
                        max_length=cfg.max_length, cache_dir=cfg.cache_dir, **episode)
    return build(cfg), hf


def test_arsc_through_hf_text_draws_the_episodes_of_data_amazon(tmp_path):
    """Every meta-train draw (200 steps x 4 tasks), every meta-val and meta-test episode,
    index for index and label for label, on the real ARSC files: the two planners agree."""
    amazon, hf = amazon_and_hf_text(tmp_path)
    a = amazon._plan(ReviewRows(**review_index(amazon.path)))
    b = hf.splits.plan(hf.read_index(), hf.episodes)
    assert a.val_specs == b.val_specs and len(b.val_specs) > 50
    assert a.test_specs == b.test_specs and len(b.test_specs) == 90
    assert a.train_sampler.families == b.train_sampler.families
    for step in range(200):
        for task in range(4):
            assert (a.train_sampler.train_episode(42, step, task)
                    == b.train_sampler.train_episode(42, step, task))
    assert hf.preflight() == amazon.preflight()


def test_benchmark_amazon_shuffled_is_the_amazon_protocol_with_label_meanings_drawn(tmp_path):
    """`benchmark=amazon_shuffled` under an Amazon experiment: data=amazon's families, held-out
    domains and meta-validation families, with label 0 positive in some episodes, negative in others."""
    amazon, _ = amazon_and_hf_text(tmp_path)
    cfg = compose_config(["experiment=reptile_amazon", "benchmark=amazon_shuffled",
                          f"paths.cache_dir={tmp_path}"], tmp_path / "out")
    shuffled = build(cfg.data)
    assert isinstance(shuffled, HFTextEpisodes) and cfg.model.pretrained == "all-MiniLM-L6-v2"
    a = amazon._plan(ReviewRows(**review_index(amazon.path)))
    b = shuffled.splits.plan(shuffled.read_index(), shuffled.episodes)
    assert a.train_sampler.families == b.train_sampler.families
    assert [s.family for s in a.test_specs] == [s.family for s in b.test_specs]
    assert {s.family for s in b.val_specs} <= {s.family for s in a.val_specs}
    positive_first = [s.classes[0] > s.classes[1] for s in b.test_specs]
    assert any(positive_first) and not all(positive_first)
    assert all(not (s.classes[0] > s.classes[1]) for s in a.test_specs)


def test_arsc_through_hf_text_gives_the_same_token_tensors(tmp_path):
    """Both data modules set up on a copy of nine ARSC files (three domains): the built
    train, val and test episodes hold the same token ids, masks and labels."""
    folder = tmp_path / "arsc"
    folder.mkdir()
    for d in ("apparel", "baby", "automotive"):
        for t in ("t2", "t4", "t5"):
            for s in ("train", "dev", "test"):
                shutil.copy(ARSC / f"{d}.{t}.{s}", folder)
    common = dict(path=str(folder), heldout=["automotive"], shots=5, queries=5, max_length=32,
                  cache_dir=str(tmp_path / "cache"), val_episodes=1, test_episodes=2)
    amazon = ReviewEpisodes(**common, domains=["apparel", "baby", "automotive"])
    hf = HFTextEpisodes(**common, layout="arsc", task_column=["domain", "task"],
                        group_column="domain", split_column="split", ways=2,
                        train_splits=["train", "test"], val_splits=["dev"])
    for d in (amazon, hf):
        d.setup("fit")
    pairs = [(amazon.build(a), hf.build(b)) for a, b in zip(amazon.val_specs, hf.val_specs, strict=False)]
    pairs += [(amazon.build(a), hf.build(b)) for a, b in zip(amazon.test_specs, hf.test_specs, strict=False)]
    pairs += [(amazon.build(amazon.train_sampler.train_episode(0, s, 0)),
               hf.build(hf.train_sampler.train_episode(0, s, 0))) for s in range(10)]
    assert len(amazon.val_specs) == len(hf.val_specs) > 0
    assert len(amazon.test_specs) == len(hf.test_specs) == 6
    for x, y in pairs:
        assert (x.family, x.group, x.ways) == (y.family, y.group, y.ways)
        for part in ("support", "query"):
            assert torch.equal(getattr(x, f"{part}_y"), getattr(y, f"{part}_y"))
            for k in ("input_ids", "attention_mask"):
                assert torch.equal(getattr(x, f"{part}_x")[k], getattr(y, f"{part}_x")[k])


# ---- through train(cfg): a 3-way and a 2-way family in one run ---------------------------------
@pytest.mark.parametrize("algorithm", ["reptile", "protonet", "finetune"])
def test_a_run_trains_on_3_way_and_2_way_families_and_meta_tests_the_heldout_one(
        algorithm, csv_file, tmp_path):
    from metalearn.train import train

    cfg = compose_config(
        ["experiment=reptile_hf_text", "debug=fast", f"algorithm={algorithm}",
         f"data.data_files={csv_file}", "data.label_column=intent",
         "data.task_column=customer", "data.heldout=[hotel]", "data.num_labels=3",
         "data.shots=2", "data.queries=2", "data.val_row_fraction=0.4",
         f"paths.log_dir={tmp_path}/logs", f"paths.cache_dir={tmp_path}/cache",
         "callbacks.rich_progress_bar=null", "registry=off"], tmp_path / "out")
    assert cfg.model.num_labels == 3  # the model's head follows the data
    metrics = train(cfg)
    assert {"test/acc", "test/hotel/acc"} <= set(metrics)


@pytest.mark.parametrize("form", ["jsonl", "parquet", "tsv", "saved"])
def test_other_file_forms_give_the_same_families(form, csv_file, tmp_path):
    """JSON Lines, Parquet, TSV and a save_to_disk folder hold the CSV's rows: same index."""
    from datasets import Dataset

    data = Dataset.from_list(rows())
    if form == "jsonl":
        data.to_json(tmp_path / "rows.jsonl")
        source = dict(data_files=str(tmp_path / "rows.jsonl"))
    elif form == "parquet":
        data.to_parquet(tmp_path / "rows.parquet")
        source = dict(data_files=str(tmp_path / "rows.parquet"))
    elif form == "tsv":
        data.to_csv(tmp_path / "rows.tsv", sep="\t", index=False)
        source = dict(data_files=str(tmp_path / "rows.tsv"))
    else:
        data.save_to_disk(str(tmp_path / "saved"))
        source = dict(data_files=None, path=str(tmp_path / "saved"))
    other = make(csv_file, tmp_path, **source)
    reference = make(csv_file, tmp_path).read_index()
    index = other.read_index()
    for key in ("family", "group", "label", "rank"):
        assert np.array_equal(getattr(index, key), getattr(reference, key)), key
    assert other.preflight() == make(csv_file, tmp_path).preflight()


def test_python_defaults_validate_on_as_many_episodes_as_the_config():
    """HFTextEpisodes built in Python chooses its best checkpoint on as many episodes per
    family as `data=hf_text` does, not on a handful."""
    from omegaconf import OmegaConf

    from metalearn.conf import CONFIG_DIR
    config = OmegaConf.load(CONFIG_DIR / "data" / "hf_text.yaml")
    assert HFTextEpisodes.episode_defaults.val_episodes == config.val_episodes == 50
