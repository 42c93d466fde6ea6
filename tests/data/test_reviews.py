"""The review DataModule on the real ARSC files and on the seed's JSON format."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from metalearn.conf import CONFIG_DIR
from metalearn.data.review_datamodule import ReviewEpisodes
from tests.conftest import ROOT

ARSC = ROOT.parent / "shared" / "data" / "amazon_reviews" / "arsc"
HELDOUT = ["automotive", "computer_&_video_games", "office_products"]
DOMAINS = list(OmegaConf.load(CONFIG_DIR / "data" / "amazon.yaml").domains)


@pytest.fixture(scope="module")
def arsc(tmp_path_factory) -> ReviewEpisodes:
    dm = ReviewEpisodes(path=str(ARSC), max_length=64, heldout=HELDOUT, shots=5, queries=5,
                        cache_dir=str(ROOT / ".cache" / "metalearn"), meta_batch_size=4,
                        steps_per_epoch=25, domains=DOMAINS)
    dm.setup("fit")
    return dm


def test_heldout_domains_never_drawn_in_meta_training(arsc):
    held = {"automotive", "computer_video_games", "office_products"}  # `&_` spelling accepted
    assert not {f.split("/")[0] for f in arsc.train_sampler.families} & held
    assert {f.split("/")[0] for f in arsc.plan.test_sampler.families} == held
    loader = arsc.train_dataloader()
    for start in (0, 25):
        loader.batch_sampler.first_step = lambda start=start: start
        for batch in loader:
            assert all(ep.group not in held for ep in batch)
    assert all(ep.group in held for ep in arsc.test_dataloader())


def test_validation_uses_dev_files_of_training_families(arsc):
    assert set(arsc.val_specs[0].support) <= set(
        i for i, s in enumerate(arsc.data["split"]) if s == "dev")
    assert all(s.family in arsc.train_sampler.families for s in arsc.val_specs)


def test_evaluation_episodes_fixed_and_padded_per_batch(arsc):
    again = ReviewEpisodes(path=str(ARSC), max_length=64, heldout=HELDOUT,
                           cache_dir=str(ROOT / ".cache" / "metalearn"), seed=99,
                           domains=DOMAINS)
    again.setup("fit")
    assert again.test_specs == arsc.test_specs  # eval episodes do not depend on the run seed
    ep = next(iter(arsc.test_dataloader()))
    width = ep.support_x["input_ids"].shape[1]
    assert width <= 64 and ep.support_x["attention_mask"].sum(1).max() == width


def test_training_episodes_follow_seed_and_global_step(arsc):
    loader = arsc.train_dataloader()
    loader.batch_sampler.first_step = lambda: 25
    first = [[e.family for e in b] for b in loader]
    assert [[e.family for e in b] for b in loader] == first
    loader.batch_sampler.first_step = lambda: 50
    assert [[e.family for e in b] for b in loader] != first
    loader.batch_sampler.first_step = lambda: 26  # one step on: the same episodes, shifted
    assert [[e.family for e in b] for b in loader][:-1] == first[1:]


def write_json(path: Path, wrapped: bool) -> None:
    rows = []
    for d in ["apparel", "baby", "computer_&_video_games"]:
        for i in range(12):
            rows.append({"domain": d, "label": "positive" if i % 2 else "negative",
                         "text": f"review {i} of {d} , quite {'good' if i % 2 else 'bad'} ."})
    path.write_text(json.dumps({"data": rows} if wrapped else rows))


@pytest.mark.parametrize("wrapped", [False, True])
def test_seed_json_format_loads(tmp_path, wrapped):
    path = tmp_path / "dataset.json"
    write_json(path, wrapped)
    dm = ReviewEpisodes(path=str(path), heldout=["computer_&_video_games"], shots=2, queries=2,
                        val_fraction=0.0, cache_dir=str(tmp_path / "cache"))
    dm.setup("fit")
    assert dm.tokenized_now
    assert dm.train_sampler.families == ["apparel", "baby"]
    assert dm.plan.test_sampler.families == ["computer_video_games"]
    ep = next(iter(dm.test_dataloader()))
    assert ep.support_y.tolist() == [0, 0, 1, 1] and ep.group == "computer_video_games"


def test_tokenized_once_then_cached(tmp_path):
    path = tmp_path / "dataset.json"
    write_json(path, wrapped=False)
    kw = dict(path=str(path), heldout=["baby"], shots=2, queries=2, val_fraction=0.0,
              cache_dir=str(tmp_path / "cache"))
    first = ReviewEpisodes(**kw)
    first.setup("fit")
    second = ReviewEpisodes(**kw)
    second.setup("fit")
    assert first.tokenized_now and not second.tokenized_now
    assert second.data["input_ids"] == first.data["input_ids"]


def test_bad_json_record_is_named(tmp_path):
    path = tmp_path / "dataset.json"
    path.write_text(json.dumps([{"domain": "x", "label": "great", "text": "t"}]))
    dm = ReviewEpisodes(path=str(path), heldout=["x"], cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match="record 0 has label 'great'"):
        dm.setup("fit")


def test_an_empty_file_is_an_error_naming_it(tmp_path):
    for name, text in (("books.t2.train", "good\t1\nbad\t-1\n"), ("books.t2.dev", "")):
        (tmp_path / name).write_text(text)
    dm = ReviewEpisodes(path=str(tmp_path), heldout=["books"], cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"books\.t2\.dev: no reviews in this file"):
        dm.setup("fit")
    with pytest.raises(ValueError, match=r"books\.t2\.dev: no reviews"):
        dm.preflight()


@pytest.mark.parametrize("text, message", [("[{\"domain\": ", "not valid JSON"), ("[]", "no reviews"),
                                           ("{\"data\": []}", "no reviews"), ("[1]", "record 0 is not")])
def test_json_errors_name_the_file(tmp_path, text, message):
    path = tmp_path / "dataset.json"
    path.write_text(text)
    dm = ReviewEpisodes(path=str(path), heldout=["x"], cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match=f"{path}: {message}"):
        dm.setup("fit")


def test_preflight_makes_the_checks_setup_makes_without_tokenizing(tmp_path):
    kw = dict(path=str(ARSC), heldout=HELDOUT, domains=DOMAINS, cache_dir=str(tmp_path / "none"))
    plan = ReviewEpisodes(**kw).preflight()
    assert "automotive" in plan.test_groups and "books" in plan.train_groups
    assert {"musical_instruments", "tools_hardware"} <= set(plan.groups) - set(DOMAINS)
    assert not (tmp_path / "none").exists()  # nothing was tokenized or cached
    with pytest.raises(ValueError, match=r"K \+ L = 40 \+ 5 .* only \d+ in class"):
        ReviewEpisodes(**kw, shots=40).preflight()
