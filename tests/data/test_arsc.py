"""The ARSC standard protocol: 12 fixed meta-test tasks from the benchmark's own files."""
from __future__ import annotations

from pathlib import Path

import hydra
import numpy as np
import pytest
from transformers import AutoTokenizer

from metalearn.data.arsc import task_file_episodes
from metalearn.data.review_datamodule import ReviewEpisodes, columns
from metalearn.models.pretrained import resolve_pretrained
from metalearn.registry.store import Store
from metalearn.resolvers import data_dir
from tests.conftest import ROOT, compose_config, run_py, scalars

ARSC = Path(data_dir(str(ROOT))) / "amazon_reviews" / "arsc"  # where the configs look
TARGETS = ["books", "dvd", "electronics", "kitchen_housewares"]
TASKS = [f"{d}/{t}" for d in TARGETS for t in ("t2", "t4", "t5")]
# Second order through the CPU attention kernels needs MAML's math-kernel switch (dev branch).
def read_file(domain: str, task: str, split: str) -> tuple[list[str], list[int]]:
    """Texts and labels (1 positive, 0 negative) of one ARSC file, in file order."""
    rows = [line.rstrip("\n").rsplit("\t", 1)
            for line in (ARSC / f"{domain}.{task}.{split}").open(encoding="utf-8") if line.strip()]
    return [t for t, _ in rows], [1 if y == "1" else 0 for _, y in rows]


def arsc_cfg(tmp_path: Path, *overrides: str):
    """The composed `experiment=reptile_arsc debug=fast` config, writing under tmp_path."""
    return compose_config(["experiment=reptile_arsc", "debug=fast", f"paths.log_dir={tmp_path}",
                           "callbacks.rich_progress_bar=null", *overrides], tmp_path / "out")


@pytest.fixture(scope="module")
def dm(tmp_path_factory) -> ReviewEpisodes:
    """The configured ARSC DataModule with the whole query files (no debug cap)."""
    cfg = arsc_cfg(tmp_path_factory.mktemp("arsc"), "data.test_query_limit=null")
    module = hydra.utils.instantiate(cfg.data)
    module.setup("fit")
    return module


def test_config_follows_the_benchmark_lists():
    cfg = arsc_cfg(Path("/tmp/unused"))
    lines = lambda name: (ARSC / name).read_text().split()  # noqa: E731
    assert list(cfg.data.heldout) == lines("workspace.target.list") == TARGETS
    assert list(cfg.data.domains) == lines("workspace.filtered.list")
    assert cfg.data.test_protocol == "arsc" and cfg.data.train_splits == ["train"]


def test_twelve_test_episodes_are_the_train_and_test_files(dm):
    assert [s.family for s in dm.test_specs] == TASKS
    for spec in dm.test_specs:
        domain, task = spec.family.split("/")
        assert spec.support_labels == read_file(domain, task, "train")[1]
        assert spec.query_labels == read_file(domain, task, "test")[1]
    books_t2 = dm.test_specs[0]
    assert (len(books_t2.support), sum(books_t2.support_labels)) == (10, 5)  # README: 5+ / 5-
    assert (len(books_t2.query), sum(books_t2.query_labels)) == (829, 779)  # README: 779+ / 50-


def test_query_is_the_test_file_in_order(dm):
    texts, _ = read_file("books", "t2", "test")
    tok = AutoTokenizer.from_pretrained(resolve_pretrained(dm.tokenizer_name))
    expected = tok(texts, truncation=True, max_length=dm.max_length)["input_ids"]
    assert [dm.input_ids[i] for i in dm.test_specs[0].query] == expected


def test_test_episodes_are_reported_per_task(dm):
    episodes = list(dm.test_dataloader())
    assert [ep.group for ep in episodes] == TASKS  # test metrics are grouped by task
    assert all(ep.shots == 5 and ep.support_y.tolist().count(1) == 5 for ep in episodes)
    assert episodes[0].query_y.shape == (829,)


def test_target_domains_never_drawn_in_meta_training(dm):
    assert len(dm.train_sampler.families) == 57  # 19 domains x 3 tasks
    assert not {f.split("/")[0] for f in dm.train_sampler.families} & set(TARGETS)
    assert not {s.family.split("/")[0] for s in dm.val_specs} & set(TARGETS)
    loader = dm.train_dataloader()
    for start in (0, 1000):
        loader.batch_sampler.first_step = lambda start=start: start
        assert all(ep.group not in TARGETS for batch in loader for ep in batch)


def test_training_families_draw_from_train_files_music_video_from_dev_and_test(dm):
    splits = columns(dm.data, ["split"])["split"]
    for family, pools in dm.train_sampler.pools.items():
        drawn = set(splits[np.concatenate(list(pools.values()))].tolist())
        if family.split("/")[0] in ("music", "video"):
            assert drawn == {"dev", "test"}
        else:
            assert drawn == {"train"}
    music_t2 = dm.train_sampler.pools["music/t2"]
    assert (len(music_t2["positive"]), len(music_t2["negative"])) == (789 + 792, 32 + 44)
    val_families = {s.family for s in dm.val_specs}
    assert not {f for f in val_families if f.split("/")[0] in ("music", "video")}
    assert all(set(splits[s.support + s.query].tolist()) == {"dev"} for s in dm.val_specs)


def test_episodes_do_not_depend_on_the_run_seed(dm, tmp_path):
    again = hydra.utils.instantiate(arsc_cfg(tmp_path, "seed=7", "data.test_query_limit=null").data)
    again.setup("fit")
    assert again.test_specs == dm.test_specs and again.val_specs == dm.val_specs
    assert dm.train_sampler.train_episode(0, 1, 2) == again.train_sampler.train_episode(0, 1, 2)


def test_query_limit_is_a_fixed_subset_of_the_test_file():
    family = np.array(["a/t2"] * 10 + ["a/t2"] * 50)
    split = np.array(["train"] * 10 + ["test"] * 50)
    labels = np.array([0, 1] * 30)
    full = task_file_episodes(["a/t2"], family, split, labels)[0]
    capped = [task_file_episodes(["a/t2"], family, split, labels, query_limit=8, seed=3)[0]
              for _ in range(2)]
    assert full.query == list(range(10, 60)) and capped[0] == capped[1]
    assert len(capped[0].query) == 8 and set(capped[0].query) <= set(full.query)
    assert capped[0].support == full.support == list(range(10))


def test_arsc_dev_protocol_scores_the_target_dev_files(tmp_path):
    # Yu et al. choose settings on the target tasks' .dev files: same support, .dev as query
    module = hydra.utils.instantiate(arsc_cfg(tmp_path, "data.test_query_limit=null",
                                              "data.test_protocol=arsc_dev").data)
    module.setup("fit")
    assert [s.family for s in module.test_specs] == TASKS
    for spec in module.test_specs:
        domain, task = spec.family.split("/")
        assert spec.support_labels == read_file(domain, task, "train")[1]
        assert spec.query_labels == read_file(domain, task, "dev")[1]
    assert [ep.group for ep in module.test_dataloader()][:3] == TASKS[:3]


def test_missing_support_file_is_named(tmp_path):
    for name, rows in [("books.t2.test", 6), ("apparel.t2.train", 24), ("apparel.t2.dev", 24)]:
        (tmp_path / name).write_text("".join(f"review {i}\t{1 if i % 2 else -1}\n"
                                             for i in range(rows)))
    dm = ReviewEpisodes(path=str(tmp_path), heldout=["books"], shots=2, queries=2,
                        test_protocol="arsc", cache_dir=str(tmp_path / "cache"))
    with pytest.raises(ValueError, match=r"books\.t2\.train is missing or lacks one class"):
        dm.setup("fit")


def test_bad_protocol_options_are_refused_before_reading():
    with pytest.raises(ValueError, match="test_protocol must be one of"):
        ReviewEpisodes(path=str(ARSC), test_protocol="yu2018")
    with pytest.raises(ValueError, match="test_query_limit must be null or >= 1"):
        ReviewEpisodes(path=str(ARSC), test_protocol="arsc", test_query_limit=0)


def test_run_py_reptile_arsc_logs_the_twelve_tasks_and_their_mean(tmp_path):
    run_py(tmp_path, "experiment=reptile_arsc", "debug=fast")
    (version,) = tmp_path.glob("tensorboard/reptile_arsc/*")
    assert version.name == "attempt-1_debug=fast"
    events = scalars(version)
    per_task = [events.Scalars(f"test/{t}/acc")[-1].value for t in TASKS]
    mean = events.Scalars("test/acc")[-1].value
    assert mean == pytest.approx(sum(per_task) / 12, abs=1e-6)
    (attempt,) = Store(f"sqlite:///{tmp_path / 'registry.db'}").list_attempts()
    rows = Store(f"sqlite:///{tmp_path / 'registry.db'}").test_results(attempt["id"])
    assert [r["group"] for r in rows] == TASKS and {r["metric"] for r in rows} == {"acc"}
    assert all(r["episodes"] == 1 and r["shots"] == 5 and r["queries"] == 50 for r in rows)
