"""The forms that start, meta-test and cancel attempts, through FastAPI's TestClient over an
unstarted runner (what they queue stays queued): what they show, that they send only the
fields changed, and that they refuse, with the API's own message, all the API refuses."""
from __future__ import annotations

import html
import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hydra.core.override_parser.overrides_parser import OverridesParser

from metalearn.api.app import create_app
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.api.settable import SETTINGS
from metalearn.registry import Store, schema
from metalearn.web.experiment_defaults import defaults_of, experiments
from metalearn.web.form_fields import field_of, fields_for
from metalearn.web.hydra_literal import literal
from tests.api.conftest import AUTH, TOKEN, log_root, runner, store, validator  # noqa: F401 (fixtures)

AMAZON, SINE = "reptile_amazon", "reptile_sinusoid"
TWO_LAYERS = [{"name": "Linear", "in_features": "auto", "out_features": 8},
              {"name": "Linear", "in_features": "auto", "out_features": 1}]


@pytest.fixture
def web(store: Store, runner: Runner, validator: OverrideValidator) -> Iterator[TestClient]:  # noqa: F811
    """A client signed in through the sign-in form (its session cookie kept)."""
    with TestClient(create_app(store, runner, validator, token=TOKEN)) as client:
        response = client.post("/signin", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
        assert response.status_code == 303, response.text
        yield client


class FormReader(HTMLParser):
    """What a browser would send for a form of a page: each named input with its value (checked
    checkboxes only), each select's selected option."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.select = form_id, False, None
        self.fields: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        if not self.inside:
            return
        if tag == "input" and a.get("name") and "disabled" not in a:
            if a.get("type") != "checkbox" or "checked" in a:
                self.fields.append((a["name"], a.get("value") or ""))
        elif tag == "select":
            self.select = a.get("name")
        elif tag == "option" and self.select and "selected" in a:
            self.fields.append((self.select, a.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_of(page: str, form_id: str) -> dict[str, Any]:
    """The fields of page's form as a browser submits them (a repeated name: a list)."""
    reader = FormReader(form_id)
    reader.feed(page)
    out: dict[str, Any] = {}
    for name, value in reader.fields:
        out[name] = value if name not in out else [*(out[name] if isinstance(out[name], list) else [out[name]]),
                                                   value]
    return out


def with_changes(fields: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """fields with some values changed (keys with . written as __); a bool sets a checkbox."""
    out = dict(fields)
    for name, value in changes.items():
        key = name.replace("__", ".")
        out[key] = ["false", "true"] if value is True else "false" if value is False else value
    return out


def start_form(web: TestClient, experiment: str) -> dict[str, Any]:
    page = web.get(f"/start?experiment={experiment}")
    assert page.status_code == 200, page.text
    return form_of(page.text, "start-form")


def message_of(page: str, element_id: str) -> str | None:
    found = re.search(rf'id="{re.escape(element_id)}">([^<]*)<', page)
    return html.unescape(found.group(1)) if found else None


def api_refusal(web: TestClient, experiment: str, overrides: list[str]) -> str:
    """What POST /runs answers for these overrides (its 422 message)."""
    response = web.post("/runs", json={"experiment": experiment, "overrides": overrides}, headers=AUTH)
    assert response.status_code == 422, response.text
    return response.json()["detail"]


def queued(store: Store) -> list[dict[str, Any]]:  # noqa: F811
    return store.list_attempts()


# ---- the start form ------------------------------------------------------------------------------


def test_start_needs_a_signed_in_viewer(store, runner, validator) -> None:  # noqa: ANN001, F811
    with TestClient(create_app(store, runner, validator, token=TOKEN)) as client:
        response = client.get("/start", follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/signin")


def test_start_lists_experiments_and_each_settable_field_with_its_default(web: TestClient,
                                                                          validator: OverrideValidator  # noqa: F811
                                                                          ) -> None:
    page = web.get(f"/start?experiment={AMAZON}").text
    options = re.findall(r'<option value="([^"]*)"', page.split('id="experiment"')[1].split("</select>")[0])
    assert options == experiments(validator) and AMAZON in options and SINE in options
    assert f'<option value="{AMAZON}" selected>' in page
    # one input per settable key the composed config has, its default filled in, its bounds
    defaults = defaults_of(validator, AMAZON)
    keys = [f.key for f in fields_for(defaults)]
    assert "data.shots" in keys and "data.image_size" not in keys  # the review data has no images
    for key in keys:
        assert f'id="field-{key.replace(".", "-")}"' in page, key
    assert re.search(r'id="field-data-shots" name="data.shots" value="5" min="1" max="1000" step="1"', page)
    assert re.search(r'id="field-trainer-max_steps" name="trainer.max_steps" value="150" min="1" max="100000"', page)
    assert re.search(r'id="field-algorithm-inner_lr" name="algorithm.inner_lr" value="0.13\d+" min="0" max="10" '
                     r'step="any"', page)
    assert re.search(r'type="checkbox" id="field-train" name="train" value="true" checked', page)
    assert 'id="field-data-heldout" name="data.heldout" value="automotive, computer_video_games, office_products"' \
        in page
    fields = form_of(page, "start-form")
    assert fields["algorithm"] == "reptile_adam_amazon" and fields["model"] == "minilm" and fields["debug"] == ""
    assert fields["data.test_episodes"] == "10"  # a rarely changed one, in a collapsed <details>
    data = page[page.index('id="section-data"'):]
    assert data.index('<details class="more">') < data.index('id="field-data-test_episodes"')
    # the layer builder: hidden for a model that is not a layer model, its kinds from the allowlist
    assert re.search(r'<div id="layer-builder" [^>]*hidden>', page)
    assert 'id="layer-kind"' in page and '<option value="Conv2d">' in page and 'id="add-layer"' in page
    assert 'data-layer-models="layers sinusoid_mlp"' in page
    # no inline script or style (the Content-Security-Policy refuses them)
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and " style=" not in page and " onclick=" not in page
    another = web.get(f"/start?experiment={SINE}").text
    assert re.search(r'id="field-data-shots" name="data.shots" value="10"', another)
    assert re.search(r'<div id="layer-builder" [^>]*data-lists="[^"]*">', another)  # shown: sinusoid_mlp
    assert another.count("<li data-spec=") == 5


def test_start_queues_exactly_the_changed_fields(web: TestClient, store: Store) -> None:  # noqa: F811
    fields = start_form(web, AMAZON)
    unchanged = web.post("/start", data=fields, follow_redirects=False)
    assert unchanged.status_code == 303
    assert store.get_attempt(int(unchanged.headers["location"].rsplit("/", 1)[1]))["overrides"] == [
        f"experiment={AMAZON}"]
    sent = with_changes(fields, data__shots="3", trainer__max_steps="20", tags="a, b-c", debug="fast",
                        algorithm__inner_lr="0.13567896067557864", test=False, data__heldout="automotive")
    response = web.post("/start", data=sent, follow_redirects=False)
    assert response.status_code == 303, message_of(response.text, "form-error")
    attempt = int(re.fullmatch(r"/attempts/(\d+)", response.headers["location"]).group(1))
    row = store.get_attempt(attempt)
    assert row["status"] == schema.QUEUED and row["experiment"] == AMAZON
    # the default inner_lr (written the same) is not sent; groups first, then the allowlist's order
    assert row["overrides"] == [f"experiment={AMAZON}", "debug=fast", "tags=[a,b-c]", "test=false",
                                "data.shots=3", "data.heldout=[automotive]", "trainer.max_steps=20"]


@pytest.mark.parametrize(("changes", "field", "overrides"), [
    ({"data__shots": "0"}, "data-shots", ["data.shots=0"]),
    ({"data__shots": "abc"}, "data-shots", ["data.shots=abc"]),
    ({"trainer__max_steps": "1000000"}, "trainer-max_steps", ["trainer.max_steps=1000000"]),
    ({"algorithm__inner_lr": "nan"}, "algorithm-inner_lr", ["algorithm.inner_lr=nan"]),
    ({"data__heldout": "automotive, mars"}, None, ["data.heldout=[automotive,mars]"]),
    ({"hydra.run.dir": "/tmp/elsewhere"}, None, ["hydra.run.dir=/tmp/elsewhere"]),
    ({"data.image_size": "28"}, None, ["data.image_size=28"]),  # settable, but not in this experiment
    ({"model": "layers", "model.layers": json.dumps([{"name": "Bogus"}])}, "model-layers",
     ["model=layers", "model.layers=[{name:Bogus}]"]),
    ({"model": "layers", "model.layers": json.dumps([{"name": "Linear", "in_features": "auto",
                                                      "out_features": 10**9}])}, "model-layers",
     ["model=layers", "model.layers=[{name:Linear,in_features:auto,out_features:1000000000}]"]),
])
def test_a_refused_value_is_shown_beside_its_field_and_nothing_is_queued(
        web: TestClient, store: Store, changes: dict[str, str], field: str | None,  # noqa: F811
        overrides: list[str]) -> None:
    fields = start_form(web, AMAZON)
    before = len(queued(store))
    response = web.post("/start", data=with_changes(fields, **changes), follow_redirects=False)
    assert response.status_code == 422, response.text
    assert len(queued(store)) == before, "a refused form queued an attempt"
    expected = api_refusal(web, AMAZON, overrides)  # the JSON API's message for the same request
    shown = message_of(response.text, f"error-{field}" if field else "form-error")
    assert shown == expected
    # the values sent are kept
    again = form_of(response.text, "start-form")
    for name, value in changes.items():
        key = name.replace("__", ".")
        if key in again:
            assert again[key] == value, key


def test_an_unknown_experiment_is_refused_as_the_api_refuses_it(web: TestClient, store: Store) -> None:  # noqa: F811
    page = web.get("/start?experiment=../secrets")
    assert page.status_code == 422
    assert message_of(page.text, "form-error") == "experiment: '../secrets' is not a valid config name"
    fields = start_form(web, SINE)
    response = web.post("/start", data={**fields, "experiment": "nope"}, follow_redirects=False)
    assert response.status_code == 422
    assert message_of(response.text, "form-error") == api_refusal(web, "nope", []) == "unknown experiment 'nope'"
    assert queued(store) == []


def test_a_group_is_sent_only_as_one_of_its_options(web: TestClient, store: Store) -> None:  # noqa: F811
    fields = start_form(web, SINE)
    response = web.post("/start", data={**fields, "debug": "fast"}, follow_redirects=False)
    assert store.get_attempt(int(response.headers["location"].rsplit("/", 1)[1]))["overrides"][1:] == ["debug=fast"]
    # a group the experiment chose cannot be unset (Hydra composes no algorithm=null): said, not sent
    response = web.post("/start", data={**fields, "algorithm": ""}, follow_redirects=False)
    assert response.status_code == 422
    assert message_of(response.text, "error-algorithm").startswith("algorithm: the experiment chooses reptile")
    response = web.post("/start", data={**fields, "algorithm": "nope"}, follow_redirects=False)
    assert response.status_code == 422 and "algorithm/nope" in message_of(response.text, "error-algorithm")
    assert len(queued(store)) == 1


def test_a_field_the_page_has_is_named_even_when_not_shown(web: TestClient) -> None:
    fields = start_form(web, AMAZON)
    response = web.post("/start", data=with_changes(fields, model__layers="[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]",
                                                    model="layers"), follow_redirects=False)
    assert response.status_code == 422
    assert "nest at most 16 brackets" in message_of(response.text, "error-model-layers")
    response = web.post("/start", data=with_changes(fields, model__layers="{not json", model="layers"))
    assert response.status_code == 422 and "not valid JSON" in message_of(response.text, "error-model-layers")


def test_the_layer_builders_field_round_trips_through_the_validator(web: TestClient, store: Store,  # noqa: F811
                                                                    validator: OverrideValidator) -> None:  # noqa: F811
    fields = start_form(web, SINE)
    assert json.loads(fields["model.layers"]) == defaults_of(validator, SINE).values["model.layers"]
    # unchanged, the experiment's own list is not sent again
    first = web.post("/start", data=fields, follow_redirects=False)
    assert store.get_attempt(int(first.headers["location"].rsplit("/", 1)[1]))["overrides"] == [f"experiment={SINE}"]
    response = web.post("/start", data=with_changes(fields, model__layers=json.dumps(TWO_LAYERS)),
                        follow_redirects=False)
    assert response.status_code == 303, response.text
    row = store.get_attempt(int(response.headers["location"].rsplit("/", 1)[1]))
    (sent,) = [o for o in row["overrides"] if o.startswith("model.layers=")]
    cfg = validator.validate(SINE, [sent])
    assert [dict(spec) for spec in cfg.model.layers] == TWO_LAYERS


def test_a_full_queue_is_said_on_the_form(web: TestClient, store: Store, runner: Runner) -> None:  # noqa: F811
    runner.max_queued = 1
    runner.submit(SINE, [])
    response = web.post("/start", data=start_form(web, SINE), follow_redirects=False)
    assert response.status_code == 429
    assert "already waiting" in message_of(response.text, "form-error")
    assert len(queued(store)) == 1


def test_a_page_write_needs_its_csrf_token_and_a_session(web: TestClient, store: Store) -> None:  # noqa: F811
    fields = start_form(web, SINE)
    no_token = {k: v for k, v in fields.items() if k != "csrf"}
    assert web.post("/start", data=no_token, follow_redirects=False).status_code == 403
    assert web.post("/start", data={**fields, "csrf": "wrong"}, follow_redirects=False).status_code == 403
    web.cookies.clear()
    assert web.post("/start", data=fields, follow_redirects=False).status_code == 401
    assert queued(store) == []


# ---- Hydra literals and messages ---------------------------------------------------------------


@pytest.mark.parametrize("value", [
    None, True, False, 0, -3, 2**40, 0.001, 1e-05, 1.5e20, 100.0, float("inf"), "auto", "num_labels", "tools_hardware",
    "a/b.c-d", "true", "False", "null", "nan", "1", "1.5", "a b", "a,b", "x'y", "back\\slash", "ends\\",
    "quote\\'", "beauty&health", "[x]", "", "é", ["a", "b-c", "true"], [], [[3, 3], {"k": "v"}], TWO_LAYERS,
])
def test_a_value_reads_back_from_its_hydra_literal(value: Any) -> None:
    (parsed,) = OverridesParser.create().parse_overrides([f"key={literal(value)}"])
    assert parsed.value() == value and type(parsed.value()) is type(value)


def test_nan_reads_back_as_nan() -> None:
    (parsed,) = OverridesParser.create().parse_overrides([f"key={literal(float('nan'))}"])
    assert parsed.value() != parsed.value()


def test_a_refusal_is_placed_by_the_key_it_names_first() -> None:
    keys = ["algorithm", "algorithm.inner_lr", "data.shots", "data.train_shots", "model", "model.layers"]
    assert field_of("'data.shots=0': data.shots=0 is out of range [1, 1000]", keys) == "data.shots"
    assert field_of("'data.train_shots=0': ...", keys) == "data.train_shots"
    assert field_of("'algorithm.inner_lr=nan': algorithm.inner_lr must be finite", keys) == "algorithm.inner_lr"
    assert field_of("model.layers: layer 0 (Bogus) ...", keys) == "model.layers"
    assert field_of("model: unexpected argument", keys) == "model"
    assert field_of("data: unknown domain(s) ['mars']", keys) is None
    assert field_of("data: K + L = 10, but ...; lower data.shots / data.queries", keys) == "data.shots"
    assert field_of("In 'train': Could not find 'algorithm/nope'", [*keys, "train"]) == "algorithm"


def test_every_settable_kind_has_a_field() -> None:
    kinds = {s.kind for s in SETTINGS.values()}
    assert kinds <= {"int", "float", "bool", "names", "choice", "int_or_all", "layers"}, kinds


# ---- the meta-test form ----------------------------------------------------------------------------


def completed_parent(store: Store, log_root: Path) -> tuple[int, Path]:  # noqa: F811
    """A completed debug=fast reptile_amazon attempt trained with K=3, its checkpoint under the
    server's log folder (as tests/api fake one)."""
    parent = store.create_attempt(name="p", experiment=AMAZON, overrides=[
        f"experiment={AMAZON}", "debug=fast", "data.shots=3", "algorithm.eval_inner_steps=4"])
    ckpt = log_root / "p" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    store.set_status(parent, schema.COMPLETED, ckpt_path=str(ckpt))
    return parent, ckpt


def test_meta_test_form_queues_a_test_attempt(web: TestClient, store: Store, runner: Runner,  # noqa: F811
                                              log_root: Path) -> None:  # noqa: F811
    parent, ckpt = completed_parent(store, log_root)
    page = web.get(f"/attempts/{parent}/test")
    assert page.status_code == 200, page.text
    fields = form_of(page.text, "test-form")
    assert sorted(fields["groups"]) == ["automotive", "computer_video_games", "office_products"]
    assert fields["shots"] == "3" and fields["steps"] == "4" and fields["queries"] == "5"
    assert 'value="tools_hardware"' in page.text  # a group it did not train on, not checked
    for element in ("field-shots", "field-steps", "field-queries", "field-episodes", "test-submit"):
        assert f'id="{element}"' in page.text
    response = web.post(f"/attempts/{parent}/test", data={**fields, "shots": "1", "steps": "7"},
                        follow_redirects=False)
    assert response.status_code == 303, response.text
    child = store.get_attempt(int(response.headers["location"].rsplit("/", 1)[1]))
    assert child["kind"] == "test" and child["parent_id"] == parent and child["status"] == schema.QUEUED
    assert child["overrides"] == [f"experiment={AMAZON}", "debug=fast", "algorithm.eval_inner_steps=4",
                                  "data.shots=1", "algorithm.eval_inner_steps=7"]
    argv = runner.check.argv(child)  # the launch check accepts it; the asked steps come last
    assert argv[-4:] == ["algorithm.eval_inner_steps=7", "train=false", "test=true", f"ckpt_path={ckpt}"]
    # another group (its smallest class holds 3 reviews: K + L of at most 3)
    other = web.post(f"/attempts/{parent}/test", data={**fields, "groups": ["tools_hardware"]},
                     follow_redirects=False)
    assert other.status_code == 422 and "lower data.shots" in message_of(other.text, "error-shots")
    other = web.post(f"/attempts/{parent}/test", data={**fields, "groups": ["tools_hardware"], "shots": "1",
                                                       "queries": "2"}, follow_redirects=False)
    assert other.status_code == 303, other.text
    assert store.get_attempt(int(other.headers["location"].rsplit("/", 1)[1]))["overrides"][-3:] == [
        "data.shots=1", "data.queries=2", "data.heldout=[tools_hardware]"]


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"shots": "0"}, "shots", "greater than or equal to 1"),
    ({"steps": "501"}, "steps", "less than or equal to 500"),
    ({"episodes": "x"}, "episodes", "valid integer"),
    ({"groups": []}, "groups", "at least one group"),
    ({"groups": ["mars"]}, "groups", "unknown domain"),
    ({"groups": ["apparel"]}, "groups", "meta-trained on ['apparel']"),
])
def test_a_refused_meta_test_is_shown_beside_its_field(web: TestClient, store: Store, log_root: Path,  # noqa: F811
                                                       changes: dict[str, Any], field: str, words: str) -> None:
    parent, _ = completed_parent(store, log_root)
    fields = form_of(web.get(f"/attempts/{parent}/test").text, "test-form")
    before = len(queued(store))
    response = web.post(f"/attempts/{parent}/test", data={**fields, **changes}, follow_redirects=False)
    assert response.status_code == 422, response.text
    assert words in message_of(response.text, f"error-{field}")
    assert len(queued(store)) == before


def test_meta_test_form_of_data_without_groups(web: TestClient, store: Store, log_root: Path) -> None:  # noqa: F811
    parent = store.create_attempt(name="s", experiment=SINE, overrides=[f"experiment={SINE}", "debug=fast"])
    (log_root / "s").mkdir(parents=True)
    (log_root / "s" / "last.ckpt").write_bytes(b"weights")
    store.set_status(parent, schema.COMPLETED, ckpt_path=str(log_root / "s" / "last.ckpt"))
    page = web.get(f"/attempts/{parent}/test")
    assert page.status_code == 200 and 'name="groups"' not in page.text
    fields = form_of(page.text, "test-form")
    response = web.post(f"/attempts/{parent}/test", data={**fields, "shots": "5"}, follow_redirects=False)
    assert response.status_code == 303, response.text
    assert store.get_attempt(int(response.headers["location"].rsplit("/", 1)[1]))["overrides"] == [
        f"experiment={SINE}", "debug=fast", "data.shots=5"]


def test_meta_test_of_an_unfinished_or_missing_attempt(web: TestClient, store: Store) -> None:  # noqa: F811
    running = store.create_attempt(name="r", experiment=AMAZON, overrides=[f"experiment={AMAZON}"])
    page = web.get(f"/attempts/{running}/test")
    assert page.status_code == 409 and "only a completed attempt with a checkpoint" in page.text
    assert web.get("/attempts/999/test").status_code == 404


def test_the_api_meta_test_takes_steps(web: TestClient, store: Store, log_root: Path) -> None:  # noqa: F811
    parent, _ = completed_parent(store, log_root)
    response = web.post(f"/runs/{parent}/test", json={"steps": 7, "shots": 2}, headers=AUTH)
    assert response.status_code == 202, response.text
    assert store.get_attempt(response.json()["id"])["overrides"][-2:] == ["data.shots=2",
                                                                        "algorithm.eval_inner_steps=7"]
    for steps in (-1, 501, "many"):
        assert web.post(f"/runs/{parent}/test", json={"steps": steps}, headers=AUTH).status_code == 422


# ---- cancel --------------------------------------------------------------------------------------


def test_cancel_a_queued_attempt(web: TestClient, store: Store, runner: Runner) -> None:  # noqa: F811
    attempt = runner.submit(SINE, [])
    csrf = form_of(web.get(f"/start?experiment={SINE}").text, "start-form")["csrf"]
    response = web.post(f"/attempts/{attempt}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == f"/attempts/{attempt}"
    assert store.get_attempt(attempt)["status"] == schema.INTERRUPTED
    again = web.post(f"/attempts/{attempt}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert again.status_code == 409 and "already interrupted" in again.text
    assert web.post("/attempts/999/cancel", data={"csrf": csrf}).status_code == 404
    assert web.post(f"/attempts/{attempt}/cancel", data={"csrf": ""}).status_code == 403
