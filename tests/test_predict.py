"""`metalearn predict`: a checkpoint adapted to a user's support file predicts their query file
exactly as its meta-test does, and every bad request is refused, naming key and file, before
any compute. Checkpoints are trained once per module by `run.py ... debug=fast`."""
from __future__ import annotations

import csv
import io
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.cli import main
from metalearn.inference import loading
from metalearn.inference.cache import CheckpointCache
from metalearn.inference.examples import read_examples
from metalearn.inference.loading import LoadedCheckpoint, load_checkpoint
from metalearn.inference.predict import predict
from metalearn.inference.run_checkpoint import find_checkpoint
from metalearn.registry import Store
from tests.conftest import ROOT, run_py

INTENTS = ROOT / "examples" / "intents.csv"


@dataclass(frozen=True)
class Trained:
    """Checkpoints trained into one registry: attempt ids and their checkpoint files."""

    folder: Path
    url: str
    ckpts: dict[int, Path]


def train_runs(folder: Path, *commands: str) -> Trained:
    """`run.py experiment=E [overrides] debug=fast` for each command (`E [overrides]`), into one
    registry under folder: attempts 1, 2, ... in order."""
    url = f"sqlite:///{folder / 'registry.db'}"
    for command in commands:
        experiment, *overrides = command.split()
        run_py(folder, f"experiment={experiment}", *overrides, "debug=fast", f"registry.url={url}")
    store = Store(url)
    try:
        ckpts = {a["id"]: Path(a["ckpt_path"]) for a in store.list_attempts(debug=None)}
    finally:
        store.close()
    assert len(ckpts) == len(commands)
    return Trained(folder, url, ckpts)


@pytest.fixture(scope="module")
def intents(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Reptile on examples/intents.csv (a tiny BERT, a 3-output head; hotel is meta-test): attempt 1."""
    return train_runs(tmp_path_factory.mktemp("intents"), "reptile_intents")


@pytest.fixture(scope="module")
def others(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """ProtoNets on examples/glyphs (attempt 1) and Reptile on the sinusoid (attempt 2)."""
    return train_runs(tmp_path_factory.mktemp("others"), "protonet_image_folder", "reptile_sinusoid")


def intent_rows(customer: str) -> list[dict[str, str]]:
    with INTENTS.open(encoding="utf-8", newline="") as fh:
        return [r for r in csv.DictReader(fh) if r["customer"] == customer]


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def hotel_files(folder: Path, query_labels: bool = False) -> tuple[Path, Path, list[dict[str, str]]]:
    """Two support rows per hotel intent; the next six hotel rows as the query."""
    rows = intent_rows("hotel")
    support, seen = [], {}
    for r in rows:
        if seen.get(r["intent"], 0) < 2:
            support.append(r)
            seen[r["intent"]] = seen.get(r["intent"], 0) + 1
    query = [r for r in rows if r not in support][:6]
    s = write_csv(folder / "few.csv", support, ["text", "intent"])
    q = write_csv(folder / "new.csv", query, ["text", "intent"] if query_labels else ["text"])
    return s, q, query


def cli(url: str, *args: str) -> int:
    return main(["--url", url, "predict", *args])


def read_out(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_predict_writes_a_row_per_query_with_the_label_and_class_probabilities(
        intents: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    support, query, rows = hotel_files(tmp_path)
    out = tmp_path / "predictions.csv"
    assert cli(intents.url, f"ckpt={intents.ckpts[1]}", f"support={support}", f"query={query}",
               f"out={out}") == 0
    notes = capsys.readouterr().out
    assert "3 classes (amenities, checkout, reservation)" in notes and "Reptile: " in notes
    by_path = read_out(out.read_text(encoding="utf-8"))
    assert list(by_path[0]) == ["text", "predicted", "p(amenities)", "p(checkout)", "p(reservation)"]
    assert [r["text"] for r in by_path] == [r["text"] for r in rows]
    for r in by_path:
        p = {k[2:-1]: float(v) for k, v in r.items() if k.startswith("p(")}
        assert sum(p.values()) == pytest.approx(1.0, abs=2e-4)
        assert r["predicted"] == max(p, key=p.get)
    # by attempt id, to standard output: the same rows
    assert cli(intents.url, "ckpt=1", f"support={support}", f"query={query}") == 0
    assert read_out(capsys.readouterr().out) == by_path


def test_a_labelled_query_file_is_scored(intents: Trained, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    support, query, rows = hotel_files(tmp_path, query_labels=True)
    assert cli(intents.url, "ckpt=1", f"support={support}", f"query={query}") == 0
    captured = capsys.readouterr()
    out = read_out(captured.out)
    assert [r["intent"] for r in out] == [r["intent"] for r in rows]
    acc = sum(r["predicted"] == r["intent"] for r in out) / len(out)
    assert f"query={query}: acc {acc:.4f} over its 6 labelled rows" in captured.err


def test_labels_sets_the_class_order_and_integers_sort_numerically(intents: Trained,
                                                                   tmp_path: Path) -> None:
    loaded = load_checkpoint(find_checkpoint(str(intents.ckpts[1])))
    support, query, _ = hotel_files(tmp_path)
    s = read_examples(str(support), key="support", inputs=loaded.inputs, labelled=True, model="m")
    q = read_examples(str(query), key="query", inputs=loaded.inputs, labelled=False, model="m")
    given = predict(loaded, s, q, labels=["reservation", "amenities", "checkout"])
    default = predict(loaded, s, q)
    assert given.classes == ["reservation", "amenities", "checkout"]
    assert default.classes == ["amenities", "checkout", "reservation"]
    numbered = {"amenities": "10", "checkout": "9", "reservation": "-1"}
    with support.open(encoding="utf-8", newline="") as fh:
        rows = [dict(r, intent=numbered[r["intent"]]) for r in csv.DictReader(fh)]
    s10 = read_examples(str(write_csv(tmp_path / "n.csv", rows, ["text", "intent"])), key="support",
                        inputs=loaded.inputs, labelled=True, model="m")
    assert predict(loaded, s10, q).classes == ["-1", "9", "10"]


def test_predict_is_a_pure_function_of_module_and_rows(intents: Trained, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Twice the same answer; the module's objective and weights as they were (what a server
    that keeps the module loaded relies on); a cache loads a file once."""
    cache = CheckpointCache(size=1)
    calls = []
    run = find_checkpoint(str(intents.ckpts[1]))

    def load() -> LoadedCheckpoint:
        calls.append(1)
        return load_checkpoint(run)

    loaded = cache.get(run.path, load)
    assert cache.get(run.path, load) is loaded and len(calls) == 1
    before = {k: v.clone() for k, v in loaded.learner.state_dict().items()}
    objective = loaded.learner.objective
    support, query, _ = hotel_files(tmp_path)
    s = read_examples(str(support), key="support", inputs=loaded.inputs, labelled=True, model="m")
    q = read_examples(str(query), key="query", inputs=loaded.inputs, labelled=False, model="m")
    first, second = predict(loaded, s, q), predict(loaded, s, q)
    assert first.predicted == second.predicted
    assert torch.equal(first.probabilities, second.probabilities)
    assert loaded.learner.objective is objective
    after = loaded.learner.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def bad_request(tmp: Path, case: str) -> tuple[list[str], str, bool]:
    """Arguments for an intents checkpoint, the message expected, and whether the model must
    load before the request can be judged (a class count, a label the support lacks)."""
    support, query, _ = hotel_files(tmp)
    rows = intent_rows("hotel")
    bank = [dict(r, intent="billing") for r in intent_rows("bank")[:2]]
    args = {"support": str(support), "query": str(query)}
    if case == "more classes than outputs":
        args["support"] = str(write_csv(tmp / "four.csv", rows[:8] + bank, ["text", "intent"]))
        return args, (rf"support={tmp}/four.csv: 4 classes in label_column 'intent' "
                      rf"\(amenities, billing, checkout, reservation\), but ckpt=\S+ \(a text "
                      rf"model, data HFTextEpisodes\) has a head of 3 outputs"), True
    if case == "a query label missing from the support":
        args["query"] = str(write_csv(tmp / "q.csv", rows[:2] + bank, ["text", "intent"]))
        return args, (rf"query={tmp}/q.csv \(line 4\): label 'billing' \(label_column 'intent'\) is "
                      rf"missing from the support set support={support}"), True
    if case == "a labels= class with no support example":
        return ({**args, "labels": "amenities,checkout,reservation,spa"},
                rf"labels=amenities,checkout,reservation,spa: 'spa' has no example in "
                rf"support={support} \(label_column 'intent'\)", True)
    if case == "a support file without the label column":
        args["support"] = str(write_csv(tmp / "s.csv", rows, ["text", "customer"]))
        return args, (rf"support={tmp}/s.csv: no column 'intent' \(label_column\); its columns are "
                      rf"'text', 'customer'"), False
    if case == "a query file without the text column":
        args["query"] = str(write_csv(tmp / "q.csv", rows, ["customer"]))
        return args, rf"query={tmp}/q.csv: no column 'text' \(text_column\)", False
    if case == "an empty text":
        args["support"] = str(write_csv(tmp / "s.csv", rows[:2] + [dict(rows[2], text=" ")],
                                        ["text", "intent"]))
        return args, rf"support={tmp}/s.csv, line 4: the text \(text_column 'text'\) is empty", False
    if case == "an image folder for a text model":
        (tmp / "glyphs" / "a").mkdir(parents=True)
        args["support"] = str(tmp / "glyphs")
        return args, (rf"support={tmp}/glyphs is a folder, but ckpt=\S+ \(a text model, data "
                      rf"HFTextEpisodes\) reads rows of a CSV file"), False
    if case == "an image key for a text model":
        return ({**args, "input_columns": "x"}, r"input_columns=x: ckpt=\S+ \(a text model, data "
                r"HFTextEpisodes\) is a text model", False)
    if case == "an unknown key":
        return {**args, "shots": "5"}, r"metalearn predict: unknown key 'shots'; the keys are ckpt, ", False
    if case == "no such support file":
        return {**args, "support": str(tmp / "none.csv")}, rf"support={tmp}/none.csv: no such file", False
    raise AssertionError(case)


CASES = ["more classes than outputs", "a query label missing from the support",
         "a labels= class with no support example", "a support file without the label column",
         "a query file without the text column", "an empty text", "an image folder for a text model",
         "an image key for a text model", "an unknown key", "no such support file"]


@pytest.mark.parametrize("case", CASES)
def test_a_bad_request_names_key_and_file_before_any_compute(
        intents: Trained, tmp_path: Path, capsys: pytest.CaptureFixture,
        monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    args, message, needs_model = bad_request(tmp_path, case)

    def no_compute(*a: object, **k: object) -> None:
        raise AssertionError("adaptation started")

    def no_load(*a: object, **k: object) -> None:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(EpisodicModule, "query_predictions", no_compute)
    from metalearn.algorithms.gradient import GradientLearner
    monkeypatch.setattr(GradientLearner, "query_predictions", no_compute)
    if not needs_model:
        monkeypatch.setattr(loading, "load_checkpoint", no_load)
    argv = [f"ckpt={intents.ckpts[1]}", *[f"{k}={v}" for k, v in args.items()]]
    assert cli(intents.url, *argv) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert re.search(message, err), err


@pytest.mark.parametrize("ckpt, message", [
    ("99", r"ckpt=99: no attempt with id 99 in the run registry"),
    ("/no/such.ckpt", r"ckpt=/no/such.ckpt: no such checkpoint file"),
])
def test_a_checkpoint_that_is_not_there_is_named(intents: Trained, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture, ckpt: str,
                                                 message: str) -> None:
    support, query, _ = hotel_files(tmp_path)
    assert cli(intents.url, f"ckpt={ckpt}", f"support={support}", f"query={query}") == 1
    assert message in capsys.readouterr().err


def test_a_checkpoint_away_from_its_run_folder_asks_for_the_attempt_id(
        intents: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    lone = tmp_path / "lone.ckpt"
    shutil.copy(intents.ckpts[1], lone)
    support, query, _ = hotel_files(tmp_path)
    assert cli(intents.url, f"ckpt={lone}", f"support={support}", f"query={query}") == 1
    err = capsys.readouterr().err
    assert f"ckpt={lone}: no run config beside it" in err and "ckpt=ID" in err


def glyph_folders(tmp: Path) -> tuple[Path, Path]:
    """One support image of three glyphs (folders named as labels); a second of each as queries."""
    support, query = tmp / "support", tmp / "query"
    query.mkdir()
    for glyph in ("glyph00", "glyph01", "glyph02"):
        first, second = sorted((ROOT / "examples" / "glyphs" / "script_a" / glyph).iterdir())[:2]
        (support / glyph).mkdir(parents=True)
        shutil.copy(first, support / glyph / first.name)
        shutil.copy(second, query / f"{glyph}_{second.name}")
    return support, query


def test_an_image_model_reads_folders_and_refuses_a_csv(others: Trained, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    support, query = glyph_folders(tmp_path)
    assert cli(others.url, "ckpt=1", f"support={support}", f"query={query}") == 0
    out = read_out(capsys.readouterr().out)
    assert [r["file"] for r in out] == sorted(p.name for p in query.iterdir())
    assert list(out[0])[2:] == ["p(glyph00)", "p(glyph01)", "p(glyph02)"]
    text, _, _ = hotel_files(tmp_path)
    assert cli(others.url, "ckpt=1", f"support={text}", f"query={query}") == 1
    assert (f"support={text} is a file, but ckpt=1 (an image model, data ImageFolderEpisodes) reads "
            f"images: support must be a folder of <class>/<image> files") in capsys.readouterr().err


def test_a_regression_model_predicts_values_and_refuses_class_labels(
        others: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    support = write_csv(tmp_path / "s.csv", [{"x": x, "y": y} for x, y in
                                             [(0.5, 1.0), (1.0, 1.5), (-1, -0.7), (2, 1.9)]], ["x", "y"])
    query = write_csv(tmp_path / "q.csv", [{"x": 0.2}, {"x": 1.5}], ["x"])
    assert cli(others.url, "ckpt=2", f"support={support}", f"query={query}") == 0
    out = read_out(capsys.readouterr().out)
    assert list(out[0]) == ["x", "predicted"] and [r["x"] for r in out] == ["0.2", "1.5"]
    assert all(isinstance(float(r["predicted"]), float) for r in out)
    labels = write_csv(tmp_path / "l.csv", [{"x": 0.5, "y": "positive"}, {"x": 1, "y": "negative"}],
                       ["x", "y"])
    assert cli(others.url, "ckpt=2", f"support={labels}", f"query={query}") == 1
    assert (f"support={labels} (line 2): label_column 'y' holds 'positive', but ckpt=2 (a numbers "
            f"model, data SinusoidEpisodes) is a regression model") in capsys.readouterr().err


# ---- the same accuracy as the meta-test, on the same episodes --------------------------------
def episodes_as_files(trained: Trained, attempt: int, texts: list[str], labels: list[str],
                      folder: Path) -> list[tuple[str, Path, Path]]:
    """The meta-test episodes of the attempt's run as (group, support CSV, labelled query CSV):
    its data module rebuilt from the run's config draws them (data.eval_seed fixes them)."""
    from omegaconf import OmegaConf

    from metalearn.instantiate import build

    run = find_checkpoint(str(trained.ckpts[attempt]))
    data = build(OmegaConf.create(run.config["data"]))
    data.prepare_data()
    data.setup("test")
    files = []
    for i, spec in enumerate(data.test_specs):
        paths = []
        for part, rows in (("support", spec.support), ("query", spec.query)):
            path = folder / f"{i}-{part}.csv"
            write_csv(path, [{"text": texts[r], "label": labels[r]} for r in rows], ["text", "label"])
            paths.append(path)
        files.append((data.build(spec).group, *paths))
    return files


def predicted_group_scores(trained: Trained, attempt: int,
                           files: list[tuple[str, Path, Path]]) -> dict[str, float]:
    """Per group, the mean over its episodes of `predict`'s accuracy on the query file."""
    from metalearn.inference.commands import with_columns

    loaded = load_checkpoint(find_checkpoint(str(trained.ckpts[attempt])))
    inputs = with_columns(loaded.inputs, {"text_column": "text", "label_column": "label"}, "m")
    loaded = LoadedCheckpoint(loaded.run, loaded.learner, inputs, loaded.head_outputs)
    scores: dict[str, list[float]] = {}
    for group, support, query in files:
        s = read_examples(str(support), key="support", inputs=inputs, labelled=True, model="m")
        q = read_examples(str(query), key="query", inputs=inputs, labelled=False, model="m")
        scores.setdefault(group, []).append(predict(loaded, s, q).score)
    return {g: sum(v) / len(v) for g, v in scores.items()}


def meta_test_scores(trained: Trained, attempt: int) -> dict[str, float]:
    store = Store(trained.url)
    try:
        return {r["group"]: r["value"] for r in store.test_results(attempt) if r["metric"] == "acc"}
    finally:
        store.close()


def test_predict_scores_the_held_out_intents_as_the_meta_test_did(intents: Trained, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture) -> None:
    with INTENTS.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    files = episodes_as_files(intents, 1, [r["text"] for r in rows], [r["intent"] for r in rows], tmp_path)
    tested = meta_test_scores(intents, 1)
    assert set(tested) == {"hotel"} and len(files) >= 2
    assert predicted_group_scores(intents, 1, files) == pytest.approx(tested, abs=1e-6)
    # the command line on one episode prints what the function computed
    group, support, query = files[0]
    assert cli(intents.url, "ckpt=1", f"support={support}", f"query={query}", "label_column=label") == 0
    out = read_out(capsys.readouterr().out)
    assert [r["label"] for r in out] and all(r["predicted"] in {"amenities", "checkout", "reservation"}
                                             for r in out)


@pytest.mark.slow  # about 35 s: a reptile_amazon debug=fast run on the ARSC reviews
def test_predict_scores_the_held_out_amazon_domains_as_the_meta_test_did(
        tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    from metalearn.data.review_datamodule import CLASSES
    from metalearn.data.reviews import read_reviews

    amazon = train_runs(tmp_path_factory.mktemp("amazon"), "reptile_amazon")
    path = Path(find_checkpoint(str(amazon.ckpts[1])).config["data"]["path"])
    reviews = read_reviews(path)
    files = episodes_as_files(amazon, 1, reviews["text"], [CLASSES[y] for y in reviews["label"]],
                              tmp_path)
    tested = meta_test_scores(amazon, 1)
    assert set(tested) == {"automotive", "computer_video_games", "office_products"}
    assert predicted_group_scores(amazon, 1, files) == pytest.approx(tested, abs=1e-6)


ALGORITHMS = ["reptile_intents algorithm=anil", "reptile_intents algorithm=metasgd",
              "reptile_intents algorithm=protonet", "reptile_intents algorithm=finetune",
              "protonet_image_folder algorithm=finetune"]


@pytest.fixture(scope="module")
def algorithms(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """A debug=fast checkpoint of each of ALGORITHMS (attempts 1, 2, ... in that order)."""
    return train_runs(tmp_path_factory.mktemp("algorithms"), *ALGORITHMS)


def image_episodes_as_folders(trained: Trained, attempt: int, folder: Path) -> list[tuple[str, Path, Path]]:
    """The image meta-test episodes as support and labelled query folders: class folders named
    by episode label (0, 1, ...: the label order), files numbered in episode order."""
    from omegaconf import OmegaConf

    from metalearn.data.image_files import list_images
    from metalearn.instantiate import build

    run = find_checkpoint(str(trained.ckpts[attempt]))
    data = build(OmegaConf.create(run.config["data"]))
    data.prepare_data()
    data.setup("test")
    files = list_images(Path(run.config["data"]["path"])).files
    out = []
    for i, spec in enumerate(data.test_specs):
        parts = []
        for part, rows, labels in (("support", spec.support, spec.support_labels),
                                   ("query", spec.query, spec.query_labels)):
            root = folder / f"{i}-{part}"
            for j, (row, label) in enumerate(zip(rows, labels, strict=True)):
                (root / str(label)).mkdir(parents=True, exist_ok=True)
                shutil.copy(files[row], root / str(label) / f"{j:03d}{files[row].suffix}")
            parts.append(root)
        out.append((data.build(spec).group, *parts))
    return out


@pytest.mark.slow  # about a minute: five debug=fast runs
@pytest.mark.parametrize("attempt", range(1, len(ALGORITHMS) + 1), ids=ALGORITHMS)
def test_every_algorithm_predicts_its_meta_test_episodes_as_its_meta_test_did(
        algorithms: Trained, tmp_path: Path, attempt: int) -> None:
    """ANIL (its own predict), Meta-SGD (learned step sizes), ProtoNets (prototypes, any number
    of classes), fine-tuning with the model's head (intents) and with a pooled classifier and a
    fresh N-way head per task (glyphs)."""
    if "image_folder" in ALGORITHMS[attempt - 1]:
        files = image_episodes_as_folders(algorithms, attempt, tmp_path)
        loaded = load_checkpoint(find_checkpoint(str(algorithms.ckpts[attempt])))
        assert loaded.head_outputs is None and loaded.learner.pooled_head is not None
        scores: dict[str, list[float]] = {}
        for group, support, query in files:
            s = read_examples(str(support), key="support", inputs=loaded.inputs, labelled=True, model="m")
            q = read_examples(str(query), key="query", inputs=loaded.inputs, labelled=False, model="m")
            scores.setdefault(group, []).append(predict(loaded, s, q).score)
        predicted = {g: sum(v) / len(v) for g, v in scores.items()}
    else:
        with INTENTS.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.DictReader(fh))
        files = episodes_as_files(algorithms, attempt, [r["text"] for r in rows],
                                  [r["intent"] for r in rows], tmp_path)
        predicted = predicted_group_scores(algorithms, attempt, files)
    assert predicted == pytest.approx(meta_test_scores(algorithms, attempt), abs=1e-6)


def test_a_run_config_naming_a_class_outside_metalearn_is_refused_before_anything_is_built(
        intents: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The config beside a checkpoint is data: a `_target_` it names would run code."""
    from omegaconf import OmegaConf

    from metalearn.inference.errors import CheckpointError
    from metalearn.inference.loading import check_targets

    run_dir = tmp_path / "run"
    shutil.copytree(intents.ckpts[1].parent.parent, run_dir)
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    config.algorithm.optimizer._target_ = "evil_module_xyz.run"
    OmegaConf.save(config, run_dir / ".hydra" / "config.yaml")
    ckpt = run_dir / "checkpoints" / intents.ckpts[1].name
    support, query, _ = hotel_files(tmp_path)
    assert cli(intents.url, f"ckpt={ckpt}", f"support={support}", f"query={query}") == 1
    assert (f"ckpt={ckpt}: its run config names algorithm.optimizer._target_=evil_module_xyz.run; "
            f"a checkpoint's config may name metalearn.*, torch.optim.* only") in capsys.readouterr().err
    assert "evil_module_xyz" not in sys.modules
    run = find_checkpoint(str(ckpt))
    with pytest.raises(CheckpointError):
        check_targets(run)
    check_targets(run, trusted=("evil_module_xyz.",))  # trust=evil_module_xyz. allows it
