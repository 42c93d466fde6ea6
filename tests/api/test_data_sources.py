"""The API on data=hf_text and data=image_folder: meta-test groups come from the data source,
not from a list of review domains."""
from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metalearn.api.overrides import OverrideError, OverrideValidator
from metalearn.conf import CONFIG_DIR
from metalearn.registry import Store, schema

ROOT = Path(__file__).resolve().parents[2]


def completed(store: Store, log_root: Path, experiment: str, overrides: list[str]) -> int:
    """A completed attempt of `experiment` with a checkpoint under the server's log folder."""
    ckpt = log_root / experiment / "last.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"weights")
    parent = store.create_attempt(name="p", experiment=experiment,
                                  overrides=[f"experiment={experiment}", *overrides])
    store.set_status(parent, schema.COMPLETED, ckpt_path=str(ckpt))
    return parent


def test_text_families_are_the_groups_a_request_names(client: TestClient, store: Store,
                                                      auth: dict, log_root: Path) -> None:
    run = {"experiment": "reptile_intents",
           "overrides": ["debug=fast", "data.shuffle_labels=true", "data.num_labels=3"]}
    assert client.post("/runs", json=run, headers=auth).status_code == 202
    mars = client.post("/runs", json={**run, "overrides": ["data.heldout=[mars]"]}, headers=auth)
    assert mars.status_code == 422 and "its groups are: airline, bank, bookshop" in mars.text
    narrow = client.post("/runs", json={**run, "overrides": ["data.num_labels=2"]}, headers=auth)
    assert narrow.status_code == 422 and "data.num_labels=3" in narrow.text
    columns = client.post("/runs", json={**run, "overrides": ["data.label_column=text"]},
                          headers=auth)
    assert columns.status_code == 422 and "not settable" in columns.text

    parent = completed(store, log_root, "reptile_intents", ["debug=fast"])
    trained = client.post(f"/runs/{parent}/test", json={"domains": ["bank"]}, headers=auth)
    assert trained.status_code == 422 and "meta-trained on ['bank']" in trained.json()["detail"]
    # its meta-validation group was never trained on: a checkpoint may be meta-tested there
    fresh = client.post(f"/runs/{parent}/test", json={"domains": ["bookshop"], "episodes": 3},
                        headers=auth)
    assert fresh.status_code == 202, fresh.text
    child = store.get_attempt(fresh.json()["id"])
    assert child["overrides"][-1] == "data.heldout=[bookshop]"


def test_image_classes_kept_apart_whether_split_by_class_or_by_group(
        client: TestClient, store: Store, auth: dict, log_root: Path) -> None:
    by_class = completed(store, log_root, "reptile_image_folder", ["debug=fast", "data.ways=3"])
    seen = client.post(f"/runs/{by_class}/test", json={"domains": ["script_b"]}, headers=auth)
    assert seen.status_code == 422 and "meta-trained on ['script_b/glyph" in seen.text
    same_split = client.post(f"/runs/{by_class}/test", json={"episodes": 3}, headers=auth)
    assert same_split.status_code == 202, same_split.text

    by_group = completed(store, log_root, "reptile_image_folder",
                         ["debug=fast", "data.ways=3", "data.heldout=[script_b]"])
    ok = client.post(f"/runs/{by_group}/test", json={"domains": ["script_b"]}, headers=auth)
    assert ok.status_code == 202, ok.text
    bad = client.post(f"/runs/{by_group}/test", json={"domains": ["script_c"]}, headers=auth)
    assert bad.status_code == 422 and "not groups of" in bad.text


@pytest.mark.parametrize("override", ["data.channels=4", "data.test_fraction=0.95",
                                      "data.path=/etc", "data.data_files=/etc/passwd",
                                      "data.layout=arsc"])
def test_source_keys_stay_the_servers(client: TestClient, auth: dict, override: str) -> None:
    run = {"experiment": "reptile_intents", "overrides": [override]}
    response = client.post("/runs", json=run, headers=auth)
    assert response.status_code == 422


def test_a_parent_is_judged_by_the_groups_it_held_out_itself(client: TestClient, store: Store,
                                                             auth: dict, log_root: Path) -> None:
    """A parent trained with its own data.heldout trained on the experiment's default held-out
    domains: meta-testing there is refused, and its own held-out domains are allowed."""
    parent = completed(store, log_root, "reptile_amazon",
                       ["debug=fast", "data.heldout=[books,dvd,electronics]"])
    seen = client.post(f"/runs/{parent}/test", json={"domains": ["automotive"]}, headers=auth)
    assert seen.status_code == 422 and "meta-trained on ['automotive']" in seen.text
    unseen = client.post(f"/runs/{parent}/test", json={"domains": ["books"]}, headers=auth)
    assert unseen.status_code == 202, unseen.text


def test_experiments_in_the_config_folder_variable_can_be_requested(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server started with METALEARN_CONFIG_DIR serves the experiments there, as run.py
    and `metalearn train` find them."""
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "my_sine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - reptile_sinusoid\n\ntask_name: my_sine\n")
    monkeypatch.delenv("METALEARN_CONFIG_DIR", raising=False)
    with pytest.raises(OverrideError, match="unknown experiment 'my_sine'"):
        OverrideValidator(CONFIG_DIR, root=ROOT).validate("my_sine", [])
    monkeypatch.setenv("METALEARN_CONFIG_DIR", str(tmp_path))
    cfg = OverrideValidator(CONFIG_DIR, root=ROOT).validate("my_sine", ["data.shots=5"])
    assert (cfg.task_name, cfg.data.shots) == ("my_sine", 5)
