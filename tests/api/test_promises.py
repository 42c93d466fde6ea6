"""What a token holder cannot do: write or read where the server did not choose, run code
through a replayed row or a checkpoint, exhaust memory, the queue or the parser."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from omegaconf import DictConfig, ListConfig

from metalearn.api.app import create_app
from metalearn.api.launch import LaunchCheck
from metalearn.api.overrides import OverrideError, OverrideValidator
from metalearn.api.runner import Runner
from metalearn.api.settable import SETTINGS
from metalearn.conf import CONFIG_DIR, compose_train
from metalearn.registry import Store, schema

ROOT = Path(__file__).resolve().parents[2]
RUN = {"experiment": "reptile_amazon", "overrides": ["debug=fast"]}
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
# A key that names where files go or come from, a host, or how many processes run.
PATH_LIKE = re.compile(r"dir|path|file|root|url|host|save|pretrained|tokenizer|devices|"
                       r"workers|nodes|strategy|accelerator|task_name|name$|version", re.I)


@pytest.mark.parametrize("override", [
    "task_name=../../../escape_tn",
    "callbacks.last_checkpoint.dirpath=/somewhere",
    "callbacks.model_checkpoint.dirpath=/somewhere",
    "data.cache_dir=/somewhere",
    "logger.tensorboard.save_dir=/somewhere",
    "data.path=/etc/passwd",
    "model.pretrained=/etc",
    "data.tokenizer=/etc",
    "trainer.default_root_dir=/somewhere",
    "trainer.max_steps=1000000000",
    "trainer.devices=64",
    "data.num_workers=64",
    "data.test_episodes=100000000",
    "data.meta_batch_size=100000",
    "logger=csv",
    "trainer=ddp",
])
def test_what_names_a_place_or_a_process_count_is_refused(client: TestClient, store: Store,
                                                          auth: dict, override: str) -> None:
    response = client.post("/runs", json={**RUN, "overrides": [override]}, headers=auth)
    assert response.status_code == 422, response.text
    assert re.search(r"not settable|set by the server|out of range", response.json()["detail"])
    assert store.list_attempts() == []


def _leaves(node: object, prefix: str = "") -> list[str]:
    """Every leaf key of a composed config, dotted."""
    if isinstance(node, DictConfig):
        return [k for key in node.keys() for k in _leaves(node._get_node(key), f"{prefix}{key}.")]
    if isinstance(node, ListConfig):
        return [prefix[:-1]]
    return [prefix[:-1]]


def test_no_path_like_key_of_any_experiment_is_settable(validator: OverrideValidator) -> None:
    """Walk every experiment's composed config, Hydra's own part included: each key that looks
    like a place, a host or a process count is refused, whatever its value."""
    found = set()
    for experiment in EXPERIMENTS:
        cfg = compose_train([f"experiment={experiment}"], return_hydra_config=True)
        found |= {k for k in _leaves(cfg) if PATH_LIKE.search(k)}
    assert {"data.path", "data.cache_dir", "hydra.run.dir", "task_name",
            "callbacks.last_checkpoint.dirpath", "trainer.devices"} <= found  # the walk works
    assert not {k for k in found if k in SETTINGS}
    for key in sorted(found):
        with pytest.raises(OverrideError, match="not settable|set by the server"):
            validator.validate("reptile_amazon", [f"{key}=x"])


def _completed_parent(store: Store, log_root: Path, overrides: list[str]) -> tuple[int, Path]:
    ckpt = log_root / "reptile_amazon" / "last.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"weights")
    parent = store.create_attempt(name="p", experiment="reptile_amazon",
                                  overrides=["experiment=reptile_amazon", *overrides])
    store.set_status(parent, schema.COMPLETED, ckpt_path=str(ckpt))
    return parent, ckpt


@pytest.mark.parametrize("stored", [
    "+callbacks.x._target_=builtins.print",
    "callbacks.model_checkpoint._target_=builtins.print",
    "paths.log_dir=/somewhere",
    "registry.url=sqlite:////tmp/elsewhere.db",
    "task_name=../../x",
])
def test_a_parent_row_is_validated_before_it_is_replayed(client: TestClient, store: Store,
                                                          runner: Runner, auth: dict,
                                                          log_root: Path, stored: str) -> None:
    """A row in a shared registry, or an attempt started from the command line with
    overrides a request could not give, is not meta-tested with them."""
    parent, _ = _completed_parent(store, log_root, ["debug=fast", stored])
    response = client.post(f"/runs/{parent}/test", json={}, headers=auth)
    assert response.status_code == 422, response.text
    assert [a["id"] for a in store.list_attempts()] == [parent]
    # and a meta-test row written behind the API's back is refused when it would start
    child = store.create_attempt(status=schema.QUEUED, kind="test", parent_id=parent,
                                 experiment="reptile_amazon",
                                 overrides=["experiment=reptile_amazon", stored], command=["run.py"])
    runner.tick()
    row = store.get_attempt(child)
    assert row["status"] == schema.FAILED and row["error"].startswith("refused at launch")
    assert row["pid"] is None


def test_only_the_servers_own_checkpoints_are_loaded(client: TestClient, store: Store, auth: dict,
                                                     runner: Runner, log_root: Path,
                                                     tmp_path: Path) -> None:
    parent, ckpt = _completed_parent(store, log_root, ["debug=fast"])
    assert client.post(f"/runs/{parent}/test", json={}, headers=auth).status_code == 202
    outside = tmp_path / "elsewhere.ckpt"
    outside.write_bytes(b"a pickle from anywhere")
    for path in (outside, log_root / ".." / "elsewhere.ckpt", log_root / "missing.ckpt"):
        store.update_attempt(parent, ckpt_path=str(path))
        response = client.post(f"/runs/{parent}/test", json={}, headers=auth)
        assert response.status_code == 422 and "will not be loaded" in response.json()["detail"]
    link = log_root / "link.ckpt"
    link.symlink_to(outside)  # a link under the log folder to a file outside it
    store.update_attempt(parent, ckpt_path=str(link))
    assert client.post(f"/runs/{parent}/test", json={}, headers=auth).status_code == 422
    # the checkpoint a queued test loads is the parent's at launch, whatever the row says
    store.update_attempt(parent, ckpt_path=str(ckpt))
    child = store.create_attempt(status=schema.QUEUED, kind="test", parent_id=parent,
                                 experiment="reptile_amazon", command=["run.py"],
                                 overrides=["experiment=reptile_amazon", f"ckpt_path={outside}"])
    argv = runner.check.argv(store.get_attempt(child))
    assert [a for a in argv if a.startswith("ckpt_path=")] == [f"ckpt_path={ckpt}"]


def test_meta_test_groups_come_from_the_data(client: TestClient, store: Store, auth: dict,
                                             log_root: Path) -> None:
    parent, _ = _completed_parent(store, log_root, ["debug=fast"])
    trained = client.post(f"/runs/{parent}/test", json={"domains": ["books"]}, headers=auth)
    assert trained.status_code == 422 and "meta-trained on ['books']" in trained.json()["detail"]
    huge = client.post(f"/runs/{parent}/test", json={"shots": 1000}, headers=auth)
    assert huge.status_code == 422 and "K + L = 1000 + 5" in huge.json()["detail"]
    assert [a["id"] for a in store.list_attempts()] == [parent]


def test_a_run_asking_more_than_the_data_holds_is_refused(client: TestClient, auth: dict) -> None:
    response = client.post("/runs", json={**RUN, "overrides": ["data.shots=400"]}, headers=auth)
    assert response.status_code == 422 and "K + L" in response.json()["detail"]
    response = client.post("/runs", json={**RUN, "overrides": ["data.heldout=[mars]"]}, headers=auth)
    assert response.status_code == 422 and "unknown domain" in response.json()["detail"]


def test_layer_specs_are_bounded_by_their_activations(client: TestClient, auth: dict) -> None:
    """1.95 M parameters, but a 25.6 GB activation per example: refused before anything runs."""
    bomb = ("model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,embedding_dim:16,mode:mean},"
            "{name:Unflatten,dim:1,unflattened_size:[16,1,1]},"
            "{name:Conv2d,in_channels:16,out_channels:16,kernel_size:1,padding:20000},"
            "{name:Flatten},{name:Linear,in_features:16,out_features:num_labels}]")
    response = client.post("/runs", json={**RUN, "overrides": ["model=layers", bomb]}, headers=auth)
    assert response.status_code == 422
    assert "values per example" in response.json()["detail"] and "layer 2 (Conv2d)" in response.json()["detail"]


@pytest.mark.parametrize("path", ["/runs/9223372036854775808", "/runs/99999999999999999999999",
                                  "/runs/0", "/runs/-1", "/runs/1/metrics?after_step=99999999999999999999",
                                  "/runs/9223372036854775808/metrics"])
def test_ids_and_steps_past_64_bits_are_refused_not_500(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 422


def test_cancel_and_test_past_64_bits(client: TestClient, auth: dict) -> None:
    big = 2**63
    assert client.post(f"/runs/{big}/cancel", headers=auth).status_code == 422
    assert client.post(f"/runs/{big}/test", json={}, headers=auth).status_code == 422
    assert client.post(f"/runs/{big - 1}/cancel", headers=auth).status_code == 404
    assert client.get(f"/runs/{big - 1}").status_code == 404


def test_the_queue_is_bounded(store: Store, validator: OverrideValidator, log_root: Path,
                              tmp_path: Path, auth: dict) -> None:
    runner = Runner(store, ROOT, LaunchCheck(validator, store, log_root), max_queued=3,
                    log_dir=tmp_path / "api-logs")
    with TestClient(create_app(store, runner, validator, token="s3cret-token")) as client:
        codes = [client.post("/runs", json=RUN, headers=auth).status_code for _ in range(4)]
        assert codes == [202, 202, 202, 429]
        full = client.post("/runs", json=RUN, headers=auth)
        assert full.status_code == 429 and int(full.headers["retry-after"]) > 0
        client.post("/runs/1/cancel", headers=auth)
        assert client.post("/runs", json=RUN, headers=auth).status_code == 202
    assert len(store.list_attempts(status=[schema.QUEUED])) == 3


def test_composition_is_cached_per_experiment(monkeypatch: pytest.MonkeyPatch) -> None:
    validator = OverrideValidator(CONFIG_DIR, root=ROOT)
    calls = []
    compose_once = validator.compose
    monkeypatch.setattr(validator, "compose", lambda o: calls.append(o) or compose_once(o))
    for seed in range(20):
        cfg = validator.validate("reptile_amazon", ["debug=fast", f"seed={seed}", "data.shots=3"])
        assert cfg.seed == seed and cfg.data.shots == 3 and cfg.data.seed == seed
    validator.validate("reptile_amazon", ["debug=fast", "algorithm=maml"])
    assert len(calls) == 2  # one per (experiment, group choices), not two per request


def test_a_422_does_not_echo_the_input(client: TestClient, auth: dict) -> None:
    long = "trainer.max_steps=" + "9" * 8000
    response = client.post("/runs", json={**RUN, "overrides": [long]}, headers=auth)
    assert response.status_code == 422 and len(response.text) < 1000
    bad_type = client.post("/runs", json={"experiment": "x" * 100_000}, headers=auth)
    assert bad_type.status_code == 422 and "x" * 200 not in bad_type.text
    huge = client.post("/runs", content=b"{" + b" " * (10 * 2**20) + b"}", headers=auth)
    assert huge.status_code == 413 and len(huge.text) < 200


@pytest.mark.parametrize("depth", [33, 400, 4000])
def test_deeply_nested_values_are_refused_before_hydra_parses(client: TestClient, store: Store, auth: dict,
                                                              depth: int) -> None:
    """Hydra's parser recurses per bracket: 400 deep overflowed Python's stack (a 500)."""
    deep = min(depth, 2000)  # an override is at most 8192 characters
    for line in ("seed=" + "[" * depth + "]" * depth, "model.layers=[" + "{a:" * deep + "1" + "}" * deep + "]"):
        response = client.post("/runs", json={**RUN, "overrides": [line]}, headers=auth)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert line.partition("=")[0] in detail and "nest" in detail and len(response.text) < 1000
    assert store.list_attempts() == []


def test_the_nesting_a_layer_spec_needs_is_accepted(validator: OverrideValidator) -> None:
    spec = ("model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,embedding_dim:16,mode:mean},"
            "{name:Unflatten,dim:1,unflattened_size:[16,1,1]},{name:Flatten},"
            "{name:Linear,in_features:auto,out_features:num_labels}]")
    assert validator.validate("reptile_amazon", ["debug=fast", "model=layers", spec]).model.layers[1].dim == 1


@pytest.mark.parametrize("key", ["algorithm.inner_lr", "algorithm.optimizer.lr", "algorithm.eval_inner_lr",
                                 "trainer.limit_val_batches", "model.dropout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_numbers_are_refused(client: TestClient, store: Store, auth: dict, key: str, value: str) -> None:
    response = client.post("/runs", json={**RUN, "overrides": [f"{key}={value}"]}, headers=auth)
    assert response.status_code == 422, response.text
    assert key in response.json()["detail"] and "finite" in response.json()["detail"]
    assert store.list_attempts() == []


def test_non_finite_numbers_in_a_layer_spec_are_refused(client: TestClient, auth: dict) -> None:
    spec = ("model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,embedding_dim:16,mode:mean},"
            "{name:Dropout,p:nan},{name:Linear,in_features:auto,out_features:num_labels}]")
    response = client.post("/runs", json={**RUN, "overrides": ["model=layers", spec]}, headers=auth)
    assert response.status_code == 422, response.text
    assert "model.layers" in response.json()["detail"] and "finite" in response.json()["detail"]


@pytest.mark.parametrize("size", [2**31, 2**63, 10**20])
def test_a_layer_size_past_what_torch_takes_is_a_short_422(client: TestClient, auth: dict, size: int) -> None:
    """10**20 made torch answer with a 2 KB C++ stack trace."""
    spec = ("model.layers=[{name:EmbeddingBag,num_embeddings:vocab_size,embedding_dim:8},"
            f"{{name:Linear,in_features:auto,out_features:{size}}}]")
    response = client.post("/runs", json={**RUN, "overrides": ["model=layers", spec]}, headers=auth)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "model.layers" in detail and "2147483647" in detail and len(response.text) < 500, detail
    assert "frame #" not in detail


# An 8-wide token embedding, then 131,072 features per token: 2^21 values per example at
# the layer model's 16-token input_shape (at the limit), 2^26 at 512 tokens (5.4 GB a batch).
WIDE_PER_TOKEN = ("model.layers=[{name:Embedding,num_embeddings:vocab_size,embedding_dim:8},"
                  "{name:Linear,in_features:auto,out_features:131072},"
                  "{name:AdaptiveAvgPool2d,output_size:[1,2]},{name:Flatten}]")


def test_layer_activations_are_bounded_at_the_token_length_the_run_uses(client: TestClient, store: Store,
                                                                        auth: dict) -> None:
    short = client.post("/runs", json={**RUN, "overrides": ["model=layers", WIDE_PER_TOKEN, "data.max_length=16"]},
                        headers=auth)
    assert short.status_code == 202, short.text
    for lengths in (["data.max_length=512"], []):  # debug=fast's own max_length is 64
        response = client.post("/runs", json={**RUN, "overrides": ["model=layers", WIDE_PER_TOKEN, *lengths]},
                               headers=auth)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert "data.max_length" in detail and "values per example" in detail, detail
    assert len(store.list_attempts()) == 1


@pytest.mark.parametrize("stored", ["debug=fast", {"debug": "fast"}, [1, 2], 7])
def test_a_row_with_malformed_json_columns_is_listed_and_refused_at_launch(client: TestClient, store: Store,
                                                                           runner: Runner, stored: object) -> None:
    """A queued row written behind the API's back whose overrides are not a list of strings:
    GET /runs answered 500 for every row."""
    attempt = store.create_attempt(status=schema.QUEUED, experiment=None, overrides=stored,
                                   command=stored, tags=stored, config=[stored])
    listed = client.get("/runs")
    assert listed.status_code == 200, listed.text
    assert [(r["id"], r["overrides"], r["command"]) for r in listed.json()] == [(attempt, stored, stored)]
    shown = client.get(f"/runs/{attempt}")
    assert shown.status_code == 200 and shown.json()["config"] == [stored]
    runner.tick()
    row = store.get_attempt(attempt)
    assert row["status"] == schema.FAILED and row["pid"] is None
    assert "overrides" in row["error"] and "list of strings" in row["error"], row["error"]


def test_a_parent_with_malformed_overrides_is_not_meta_tested(client: TestClient, store: Store, auth: dict,
                                                              log_root: Path) -> None:
    parent, _ = _completed_parent(store, log_root, ["debug=fast"])
    store.update_attempt(parent, overrides="experiment=reptile_amazon")
    response = client.post(f"/runs/{parent}/test", json={}, headers=auth)
    assert response.status_code == 422 and "not a list of strings" in response.json()["detail"]
