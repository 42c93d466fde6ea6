"""POST /runs/{id}/predict: the same predictions as `metalearn predict` and `predict()` for the
same rows, the meta-trained module loaded once and kept (bounded, least recently used), never
changed by a request, and every bad request refused before compute with the key it got wrong.
Checkpoints are trained once per module by `run.py ... debug=fast` into the server's log folder."""
from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from metalearn.api import server
from metalearn.api.app import create_app
from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.inference import loading
from metalearn.inference.examples import read_examples
from metalearn.inference.loading import load_checkpoint
from metalearn.inference.predict import predict
from metalearn.inference.run_checkpoint import find_checkpoint
from metalearn.registry import Store, schema
from tests.api.conftest import AUTH, TOKEN
from tests.test_predict import Trained, cli, hotel_files, read_out, train_runs, write_csv

INTENTS, SINUSOID = 1, 2  # attempt ids in the module's registry


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """Reptile on examples/intents.csv (attempt 1, a 3-output head) and on the sinusoid (attempt 2)."""
    return train_runs(tmp_path_factory.mktemp("served"), "reptile_intents", "reptile_sinusoid")


@pytest.fixture
def served_store(trained: Trained) -> Iterator[Store]:
    store = Store(trained.url)
    yield store
    store.close()


def make_client(store: Store, validator: OverrideValidator, log_root: Path, tmp_path: Path,
                token: str | None = TOKEN, cache: int = 2) -> TestClient:
    """The app over the trained registry; its log folder (where checkpoints may be loaded from)
    is the one the runs were trained into."""
    runner = Runner(store, Path.cwd(), LaunchCheck(validator, store, log_root), log_dir=tmp_path / "api-logs")
    return TestClient(create_app(store, runner, validator, token=token, predict_cache=cache))


@pytest.fixture
def served(served_store: Store, validator: OverrideValidator, trained: Trained, tmp_path: Path) -> TestClient:
    return make_client(served_store, validator, trained.folder, tmp_path)


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The checkpoints the server loads, in order (the cache's misses)."""
    seen: list[str] = []
    real = loading.load_checkpoint

    def counted(run: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(run.reference)
        return real(run, *args, **kwargs)

    monkeypatch.setattr(loading, "load_checkpoint", counted)
    return seen


def rows_of(path: Path, text: str = "text", label: str | None = "intent") -> list[dict[str, str]]:
    """A CSV file's rows as the request's JSON rows."""
    with path.open(encoding="utf-8", newline="") as fh:
        return [{"text": r[text], **({"label": r[label]} if label and r.get(label) else {})}
                for r in csv.DictReader(fh)]


def hotel_body(tmp_path: Path, query_labels: bool = False) -> tuple[dict[str, Any], Path, Path]:
    support, query, _ = hotel_files(tmp_path, query_labels=query_labels)
    return {"support": rows_of(support), "query": rows_of(query)}, support, query


def post(client: TestClient, attempt: int, body: dict[str, Any], **kwargs: Any) -> Any:
    return client.post(f"/runs/{attempt}/predict", json=body, headers=kwargs.pop("headers", AUTH), **kwargs)


def test_http_answers_what_predict_and_the_command_line_answer(
        served: TestClient, trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    body, support, query = hotel_body(tmp_path)
    response = post(served, INTENTS, body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["classes"] == ["amenities", "checkout", "reservation"]
    assert answer["metric"] == "acc" and answer["score"] is None and len(answer["predictions"]) == 6
    # predict() on the same rows read from the files: the very numbers
    loaded = load_checkpoint(find_checkpoint(str(trained.ckpts[INTENTS])))
    s = read_examples(str(support), key="support", inputs=loaded.inputs, labelled=True, model="m")
    q = read_examples(str(query), key="query", inputs=loaded.inputs, labelled=False, model="m")
    expected = predict(loaded, s, q)
    assert [p["predicted"] for p in answer["predictions"]] == expected.predicted
    assert [list(p["probabilities"].values()) for p in answer["predictions"]] == expected.probabilities.tolist()
    assert all(list(p["probabilities"]) == expected.classes and "label" not in p for p in answer["predictions"])
    assert answer["adapted"] == expected.adapted
    # `metalearn predict` on the files: the same labels and probabilities, as it prints them
    assert cli(trained.url, f"ckpt={INTENTS}", f"support={support}", f"query={query}") == 0
    printed = read_out(capsys.readouterr().out)
    assert [r["predicted"] for r in printed] == expected.predicted
    assert [{k: v for k, v in r.items() if k.startswith("p(")} for r in printed] == [
        {f"p({c})": f"{v:.4f}" for c, v in p["probabilities"].items()} for p in answer["predictions"]]


def test_labelled_queries_are_scored(served: TestClient, tmp_path: Path) -> None:
    body, _, query = hotel_body(tmp_path, query_labels=True)
    answer = post(served, INTENTS, body).json()
    truth = [r["label"] for r in body["query"]]
    assert [p["label"] for p in answer["predictions"]] == truth
    hits = [p["predicted"] == t for p, t in zip(answer["predictions"], truth, strict=True)]
    assert answer["score"] == pytest.approx(sum(hits) / len(hits))
    order = ["reservation", "checkout", "amenities"]
    assert post(served, INTENTS, {**body, "labels": order}).json()["classes"] == order


def test_the_module_is_loaded_once_and_no_request_changes_it(served: TestClient, tmp_path: Path,
                                                             loads: list[str]) -> None:
    body, _, _ = hotel_body(tmp_path)
    first = post(served, INTENTS, body).json()
    (loaded,) = served.app.state.predict_cache._loaded.values()
    before = {k: v.clone() for k, v in loaded.learner.state_dict().items()}
    objective = loaded.learner.objective
    second = post(served, INTENTS, body).json()
    assert loads == [str(INTENTS)]  # the second request did not load it again
    assert first == second
    assert loaded.learner.objective is objective
    after = loaded.learner.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def sinusoid_body() -> dict[str, Any]:
    return {"support": [{"x": x, "label": y} for x, y in [(0.5, 1.0), (1.0, 1.5), (-1, -0.7), (2, 1.9)]],
            "query": [{"x": [0.2]}, {"x": 1.5}]}


def test_a_regression_model_answers_values(served: TestClient, trained: Trained, tmp_path: Path) -> None:
    answer = post(served, SINUSOID, sinusoid_body()).json()
    assert answer["classes"] is None and answer["metric"] == "mse"
    assert all(set(p) == {"predicted"} for p in answer["predictions"])
    loaded = load_checkpoint(find_checkpoint(str(trained.ckpts[SINUSOID])))
    s = read_examples(str(write_csv(tmp_path / "s.csv", [{"x": x, "y": y} for x, y in
                                                         [(0.5, 1.0), (1.0, 1.5), (-1, -0.7), (2, 1.9)]],
                                    ["x", "y"])), key="support", inputs=loaded.inputs, labelled=True, model="m")
    q = read_examples(str(write_csv(tmp_path / "q.csv", [{"x": 0.2}, {"x": 1.5}], ["x"])), key="query",
                      inputs=loaded.inputs, labelled=False, model="m")
    assert [p["predicted"] for p in answer["predictions"]] == predict(loaded, s, q).predicted


def test_the_cache_holds_its_bound_least_recently_used_out(
        served_store: Store, validator: OverrideValidator, trained: Trained, tmp_path: Path,
        loads: list[str]) -> None:
    body, _, _ = hotel_body(tmp_path)
    one = make_client(served_store, validator, trained.folder, tmp_path, cache=1)
    for attempt, request in ((INTENTS, body), (SINUSOID, sinusoid_body()), (INTENTS, body)):
        assert post(one, attempt, request).status_code == 200
    assert loads == ["1", "2", "1"] and len(one.app.state.predict_cache) == 1
    loads.clear()
    two = make_client(served_store, validator, trained.folder, tmp_path, cache=2)
    for attempt, request in ((INTENTS, body), (SINUSOID, sinusoid_body()), (INTENTS, body),
                             (SINUSOID, sinusoid_body())):
        assert post(two, attempt, request).status_code == 200
    assert loads == ["1", "2"] and len(two.app.state.predict_cache) == 2


def test_the_cache_size_is_a_serve_option(sqlite_url: str, tmp_path: Path) -> None:
    app = server.build(sqlite_url, "127.0.0.1", root=tmp_path, predict_cache=3)
    assert app.state.predict_cache.size == 3
    app.state.store.close()


# ---- refused ----------------------------------------------------------------------------------
def attempt_with(store: Store, status: str, ckpt: Path | None, config: dict[str, Any] | None = None) -> int:
    attempt = store.create_attempt(name="p", experiment="reptile_intents", overrides=[], config=config)
    if status != schema.RUNNING:
        store.set_status(attempt, status, ckpt_path=None if ckpt is None else str(ckpt))
    return attempt


@pytest.fixture
def no_compute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Adapting fails the test: a bad request is refused before it."""
    from metalearn.algorithms.episodic import EpisodicModule
    from metalearn.algorithms.gradient import GradientLearner

    def adapted(*a: object, **k: object) -> None:
        raise AssertionError("adaptation started")

    monkeypatch.setattr(EpisodicModule, "query_predictions", adapted)
    monkeypatch.setattr(GradientLearner, "query_predictions", adapted)


@pytest.mark.parametrize("case, message", [
    ("a query label missing from the support",
     "query=JSON (query[0]): label 'billing' (label_column 'label') is missing from the support set"),
    ("more classes than the head", "support=JSON: 4 classes in label_column 'label' (amenities, billing, "
                                   "checkout, reservation), but ckpt=1 (a text model, data HFTextEpisodes) "
                                   "has a head of 3 outputs"),
    ("numbers for a text model", "query[1].x: attempt 1 (a text model) reads texts: give each row's 'text'"),
    ("text for a numbers model", "support[0].text: attempt 2 (a numbers model) reads numbers"),
    ("the wrong number of inputs", "query[0].x: attempt 2 (a numbers model) takes 1 input number per row"),
    ("a query set labelled in part", "query[1].label: missing (label every query row or none)"),
    ("a labels= class with no support example", "labels=amenities,checkout,reservation,spa: 'spa' has no example"),
])
def test_a_bad_request_is_422_naming_the_key_before_compute(served: TestClient, tmp_path: Path, no_compute: None,
                                                            case: str, message: str) -> None:
    body, _, _ = hotel_body(tmp_path)
    attempt = INTENTS
    if case == "a query label missing from the support":
        body["query"] = [{"text": "Can I pay my card bill here?", "label": "billing"}]
    elif case == "more classes than the head":
        body["support"].append({"text": "Can I pay my card bill here?", "label": "billing"})
    elif case == "numbers for a text model":
        body["query"].insert(1, {"x": [1.0]})
    elif case == "text for a numbers model":
        attempt, body = SINUSOID, {**sinusoid_body(), "support": [{"text": "one", "label": 1}, {"x": 2, "label": 3}]}
    elif case == "the wrong number of inputs":
        attempt, body = SINUSOID, {**sinusoid_body(), "query": [{"x": [1.0, 2.0]}]}
    elif case == "a query set labelled in part":
        body["query"] = [{"text": "a", "label": "checkout"}, {"text": "b"}]
    else:
        body["labels"] = ["amenities", "checkout", "reservation", "spa"]
    response = post(served, attempt, body)
    assert response.status_code == 422, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize("body, where", [
    ({"support": [], "query": [{"text": "a"}]}, ["body", "support"]),
    ({"support": [{"text": "a", "label": "x"}] * 2, "query": [{"text": "a"}] * 1001}, ["body", "query"]),
    ({"support": [{"text": "a" * 4097, "label": "x"}] * 2, "query": [{"text": "a"}]}, ["body", "support", 0, "text"]),
    ({"support": [{"text": "a"}] * 2, "query": [{"text": "a"}]}, ["body", "support", 0, "label"]),
    ({"support": [{"text": "a", "label": True}] * 2, "query": [{"text": "a"}]}, ["body", "support", 0, "label"]),
    ({"support": [{"x": 1, "label": 1}] * 2, "query": [{"x": 1, "image": "a.png"}]}, ["body", "query", 0, "image"]),
    ({"support": [{"text": "a", "label": str(i)} for i in range(101)], "query": [{"text": "a"}]}, ["body"]),
])
def test_bounds_and_shapes_are_422(served: TestClient, no_compute: None, body: dict[str, Any],
                                   where: list[Any]) -> None:
    response = post(served, INTENTS, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"][: len(where)] == where


def test_an_image_model_is_refused_over_json(served: TestClient, served_store: Store, trained: Trained) -> None:
    config = {"data": {"image_size": 28, "channels": 1}, "model": {}, "objective": {}, "algorithm": {}}
    attempt = attempt_with(served_store, schema.COMPLETED, trained.ckpts[INTENTS], config)
    response = post(served, attempt, {"support": [{"text": "a", "label": "x"}] * 2, "query": [{"text": "a"}]})
    assert response.status_code == 422
    assert response.json()["detail"].startswith(f"attempt {attempt} (an image model) reads images, and a "
                                                "JSON row carries none")


def test_an_attempt_that_cannot_predict_is_404_or_409(served: TestClient, served_store: Store, trained: Trained,
                                                     tmp_path: Path) -> None:
    body, _, _ = hotel_body(tmp_path)
    assert post(served, 999, body).status_code == 404
    running = attempt_with(served_store, schema.RUNNING, None)
    assert post(served, running, body).status_code == 409
    failed = attempt_with(served_store, schema.FAILED, trained.ckpts[INTENTS])
    assert "only a completed attempt" in post(served, failed, body).json()["detail"]
    outside = tmp_path / "elsewhere" / "last.ckpt"
    outside.parent.mkdir()
    outside.write_bytes(trained.ckpts[INTENTS].read_bytes())
    config = served_store.get_attempt(INTENTS)["config"]
    away = attempt_with(served_store, schema.COMPLETED, outside, config)
    response = post(served, away, body)
    assert response.status_code == 409 and "not a file under this server's log folder" in response.json()["detail"]
    broken = trained.folder / "broken" / "last.ckpt"
    broken.parent.mkdir(exist_ok=True)
    broken.write_bytes(b"weights")
    response = post(served, attempt_with(served_store, schema.COMPLETED, broken, config), body)
    assert response.status_code == 409 and "cannot load it as a checkpoint" in response.json()["detail"]


def test_the_token_is_required_and_the_body_bounded(served: TestClient, served_store: Store,
                                                    validator: OverrideValidator, trained: Trained,
                                                    tmp_path: Path, no_compute: None) -> None:
    body, _, _ = hotel_body(tmp_path)
    assert post(served, INTENTS, body, headers={}).status_code == 401
    assert post(served, INTENTS, body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    tokenless = make_client(served_store, validator, trained.folder, tmp_path, token=None)
    assert post(tokenless, INTENTS, body).status_code == 403
    huge = {"support": body["support"], "query": [{"text": "x" * 4000}] * 70}  # about 280 KB
    assert post(served, INTENTS, huge).status_code == 413


def test_the_endpoint_is_documented(served: TestClient) -> None:
    spec = served.get("/openapi.json").json()
    operation = spec["paths"]["/runs/{attempt_id}/predict"]["post"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(operation["responses"])
    assert operation["security"] == [{"bearerToken": []}]
    (example,) = spec["components"]["schemas"]["PredictRequest"]["examples"]
    answer = post(served, INTENTS, example)
    assert answer.status_code == 200, answer.text
    assert answer.json()["classes"] == ["negative", "positive"] and len(answer.json()["predictions"]) == 1
