"""The HTTP API through FastAPI's TestClient: auth, validation, following and meta-testing."""
from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.server import build
from metalearn.registry import RegistryError, Store, schema

RUN = {"experiment": "reptile_amazon", "overrides": ["debug=fast"]}


def test_health_needs_no_token(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["schema_version"] == schema.SCHEMA_VERSION


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}])
def test_writes_need_the_token(client: TestClient, headers: dict) -> None:
    response = client.post("/runs", json=RUN, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert client.post("/runs/1/cancel", headers=headers).status_code == 401
    assert client.post("/runs/1/test", json={}, headers=headers).status_code == 401


def test_a_server_without_token_refuses_writes(store, runner, validator) -> None:  # noqa: ANN001
    with TestClient(create_app(store, runner, validator, token=None)) as c:
        response = c.post("/runs", json=RUN, headers={"Authorization": "Bearer anything"})
        assert response.status_code == 403 and "METALEARN_API_TOKEN" in response.json()["detail"]
        assert c.get("/runs").status_code == 200


def test_reads_need_the_token_off_loopback(store, runner, validator, auth) -> None:  # noqa: ANN001
    with TestClient(create_app(store, runner, validator, token="t", token_for_reads=True)) as c:
        assert c.get("/runs").status_code == 401
        assert c.get("/runs", headers={"Authorization": "Bearer t"}).status_code == 200
        assert c.get("/health").status_code == 200


def test_binding_off_loopback_without_token_is_refused(monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.delenv("METALEARN_API_TOKEN", raising=False)
    with pytest.raises(RegistryError, match="needs METALEARN_API_TOKEN"):
        build(sqlite_url, "0.0.0.0")
    monkeypatch.setenv("METALEARN_API_TOKEN", "t")  # one character guards nothing
    with pytest.raises(RegistryError, match="at least 32.*secrets.token_urlsafe"):
        build(sqlite_url, "0.0.0.0")
    monkeypatch.setenv("METALEARN_API_TOKEN", "x" * 32)
    assert build(sqlite_url, "0.0.0.0") is not None


def test_post_runs_queues_an_attempt(client: TestClient, store: Store, auth: dict) -> None:
    response = client.post("/runs", json=RUN, headers=auth)
    assert response.status_code == 202, response.text
    attempt = response.json()["id"]
    row = store.get_attempt(attempt)
    assert row["status"] == schema.QUEUED and row["experiment"] == "reptile_amazon"
    assert row["command"] == ["metalearn train", "experiment=reptile_amazon", "debug=fast"]
    listed = client.get("/runs", params={"status": "queued"}).json()
    assert [r["id"] for r in listed] == [attempt]
    assert client.get("/runs", params={"status": "bogus"}).status_code == 422


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"overrides": []}, "experiment"),
        ({"experiment": "reptile_amazon", "extra": 1}, "extra"),
        ({"experiment": "../../etc/passwd"}, "pattern"),
        ({"experiment": "no_such_experiment"}, "unknown experiment"),
        ({"experiment": "reptile_amazon", "overrides": "debug=fast"}, "list"),
        ({**RUN, "overrides": ["nonexistent.key=1"]}, "nonexistent.key is not settable"),
        ({**RUN, "overrides": ["trainer.max_steps=many"]}, "must be an integer"),
        ({**RUN, "overrides": ["data.shots=2.5"]}, "must be an integer"),
        ({**RUN, "overrides": ["train=yes"]}, "must be true or false"),
        ({**RUN, "overrides": ["algorithm.inner_lr=fast"]}, "must be a number"),
        ({**RUN, "overrides": ["model=conv4", "model.hidden=many"]}, "must be an integer"),
        ({**RUN, "overrides": ["model.trainable_layers=9.5"]}, "must be an integer or all"),
        ({**RUN, "overrides": ["model._target_=os.system"]}, "_target_"),
        ({**RUN, "overrides": ["model={_target_:os.system}"]}, "special keys"),
        ({**RUN, "overrides": ["model.config_overrides={_target_:os.system}"]}, "special keys"),
        ({**RUN, "overrides": ["model.config_overrides={a:[{_args_:[1]}]}"]}, "special keys"),
        ({**RUN, "overrides": ["+model.evil=1"]}, "adding"),
        ({**RUN, "overrides": ["~model"]}, "deleting"),
        ({**RUN, "overrides": ["hydra.run.dir=/tmp/x"]}, "set by the server"),
        ({**RUN, "overrides": ["paths.log_dir=/tmp/x"]}, "set by the server"),
        ({**RUN, "overrides": ["registry=off"]}, "set by the server"),
        ({**RUN, "overrides": ["ckpt_path=/etc/passwd"]}, "POST /runs/{id}/test"),
        ({**RUN, "overrides": ["trainer.max_steps=${oc.env:METALEARN_API_TOKEN}"]}, "interpolations"),
        ({**RUN, "overrides": ["seed=1,2,3"]}, "sweeps"),
        ({**RUN, "overrides": ["model=../../x"]}, "not a valid config name"),
        ({**RUN, "overrides": ["model=nonexistent"]}, "model/nonexistent"),
        ({**RUN, "overrides": ["__import__('os').system('id')"]}, "cannot parse"),
        ({**RUN, "overrides": ["x=1"] * 65}, "at most 64"),
        ({**RUN, "overrides": ["model=layers", "model.layers=[{name:Exec,code:1}]"]}, "disallowed layer"),
        ({**RUN, "overrides": ["model=layers", "model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,"
                               "embedding_dim:8},{name:Linear,in_features:9,out_features:2}]"]}, "does not fit"),
        ({**RUN, "overrides": ["model=layers", "model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,"
                               "embedding_dim:8},{name:Linear,in_features:auto,out_features:3}]"]}, "must end in"),
    ],
)
def test_bad_payloads_are_422_with_a_message(client: TestClient, store: Store, auth: dict,
                                             payload: dict, message: str) -> None:
    response = client.post("/runs", json=payload, headers=auth)
    assert response.status_code == 422, response.text
    assert message in str(response.json()["detail"])
    assert store.list_attempts() == []  # nothing was queued


def test_a_layer_spec_model_is_accepted(client: TestClient, auth: dict) -> None:
    layers = ("model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,embedding_dim:16,mode:mean,"
              "padding_idx:0},{name:Linear,in_features:auto,out_features:num_labels}]")
    response = client.post("/runs", json={**RUN, "overrides": ["model=layers", layers]}, headers=auth)
    assert response.status_code == 202, response.text


def test_follow_metrics_and_show(client: TestClient, store: Store) -> None:
    attempt = store.create_attempt(name="x", experiment="reptile_amazon", config={"seed": 1})
    store.add_metrics(attempt, [{"name": n, "step": s, "value": s / 10, "time": time.time()}
                                for s in range(5) for n in ("train/query_loss", "val/acc")])
    store.add_metrics(attempt, [{"name": "train/query_loss", "step": 5, "value": float("nan"), "time": 0.0}])
    url = f"/runs/{attempt}/metrics"
    page = client.get(url, params={"name": "train/query_loss", "after_step": 2}).json()
    # running: the newest step (5) may still be getting rows, so it is held back
    assert page["status"] == "running" and page["last_step"] == 4
    assert [(m["step"], m["value"]) for m in page["metrics"]] == [(3, 0.3), (4, 0.4)]
    assert client.get(url, params={"after_step": 4}).json()["metrics"] == []
    store.set_status(attempt, schema.COMPLETED)
    page = client.get(url, params={"after_step": 4}).json()
    assert page["status"] == "completed" and page["last_step"] == 5
    assert [(m["name"], m["step"], m["value"]) for m in page["metrics"]] == [("train/query_loss", 5, None)]
    empty = client.get(url, params={"after_step": 5}).json()
    assert empty["metrics"] == [] and empty["last_step"] == 5
    cut = client.get(url, params={"limit": 3}).json()  # a page ends on a whole step
    assert [(m["name"], m["step"]) for m in cut["metrics"]] == [("train/query_loss", 0), ("val/acc", 0)]
    assert cut["last_step"] == 0
    shown = client.get(f"/runs/{attempt}").json()
    assert shown["config"] == {"seed": 1} and shown["metrics"]["val/acc"]["last"] == 0.4
    assert client.get("/runs/999").status_code == 404
    assert client.get("/runs/999/metrics").status_code == 404


def test_cancel_a_queued_attempt(client: TestClient, store: Store, auth: dict) -> None:
    attempt = client.post("/runs", json=RUN, headers=auth).json()["id"]
    response = client.post(f"/runs/{attempt}/cancel", headers=auth)
    assert response.status_code == 202 and response.json()["status"] == "interrupted"
    assert store.get_attempt(attempt)["error"] == "cancelled before it started"
    assert client.post(f"/runs/{attempt}/cancel", headers=auth).status_code == 409
    assert client.post("/runs/999/cancel", headers=auth).status_code == 404


def test_meta_test_a_finished_attempt(client: TestClient, store: Store, runner, auth: dict,  # noqa: ANN001
                                      log_root) -> None:  # noqa: ANN001
    parent = store.create_attempt(name="p", experiment="reptile_amazon",
                                  overrides=["experiment=reptile_amazon", "debug=fast", "data.shots=3",
                                             "hydra.run.dir=/somewhere"])
    body = {"shots": 1, "queries": 2, "episodes": 3, "domains": ["automotive", "tools_hardware"]}
    assert client.post(f"/runs/{parent}/test", json=body, headers=auth).status_code == 409  # still running
    ckpt = log_root / "run with space" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    store.set_status(parent, schema.COMPLETED, ckpt_path=str(ckpt))
    response = client.post(f"/runs/{parent}/test", json=body, headers=auth)
    assert response.status_code == 202, response.text
    child = store.get_attempt(response.json()["id"])
    assert child["kind"] == "test" and child["parent_id"] == parent and child["status"] == "queued"
    assert child["overrides"] == [  # the server's keys are added when it starts, from the parent
        "experiment=reptile_amazon", "debug=fast", "data.shots=1", "data.queries=2",
        "data.test_episodes=3", "data.heldout=[automotive,tools_hardware]",
    ]
    assert runner.check.argv(child) == [
        "experiment=reptile_amazon", "debug=fast", "data.shots=1", "data.queries=2",
        "data.test_episodes=3", "data.heldout=[automotive,tools_hardware]",
        "train=false", "test=true", f"ckpt_path='{ckpt}'",
    ]
    bad = client.post(f"/runs/{parent}/test", json={"domains": ["mars"]}, headers=auth)
    assert bad.status_code == 422 and "unknown domain" in bad.json()["detail"]
    assert client.post(f"/runs/{parent}/test", json={"shots": 0}, headers=auth).status_code == 422
    assert client.post(f"/runs/{parent}/test", json={"domains": ["a;rm -rf"]}, headers=auth).status_code == 422
    assert client.post("/runs/999/test", json={}, headers=auth).status_code == 404


@pytest.mark.parametrize("override", ["debug=null", "algorithm=null"])
def test_a_group_set_to_null_is_422_not_500(client: TestClient, auth: dict[str, str], override: str) -> None:
    """Hydra refuses a group override of null with a plain ValueError; the API says why (422)."""
    r = client.post("/runs", json={"experiment": "maml_sinusoid", "overrides": [override]}, headers=auth)
    assert r.status_code == 422, r.text
    assert "must be a string or a list" in r.json()["detail"]
