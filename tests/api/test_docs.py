"""The API's documentation: /docs and /redoc load nothing from another host, and the OpenAPI
document describes every endpoint's answers, the bearer scheme and an example of each body."""
from __future__ import annotations

import re
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.models import Problem, RunRequest, TestRequest, ValidationProblem
from metalearn.registry import Store, report, schema

ORIGIN = "http://testserver"  # TestClient's base URL: same-origin references resolve to it
WRITE = {"401", "403"}
# The answers each endpoint documents besides its success (loopback server: reads are open).
EXPECTED = {
    ("get", "/health"): {"200"},
    ("post", "/runs"): {"202", "422", "429"} | WRITE,
    ("post", "/runs/{attempt_id}/test"): {"202", "404", "409", "422", "429"} | WRITE,
    ("post", "/runs/{attempt_id}/cancel"): {"202", "404", "409", "422"} | WRITE,
    ("post", "/runs/{attempt_id}/predict"): {"200", "404", "409", "422"} | WRITE,
    ("get", "/runs"): {"200", "422"},
    ("get", "/runs/{attempt_id}"): {"200", "404", "422"},
    ("get", "/runs/{attempt_id}/metrics"): {"200", "404", "422"},
}


class _Refs(HTMLParser):
    """Every src and href attribute of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]


def page_refs(html: str) -> list[str]:
    """The URLs a page's tags load or link to."""
    parser = _Refs()
    parser.feed(html)
    return parser.urls


def foreign_refs(html: str, origin: str = ORIGIN) -> list[str]:
    """What a page served from origin references on another host: tag URLs that resolve
    elsewhere, and absolute URLs anywhere in its text (inline scripts, styles)."""
    host = urlsplit(origin).netloc
    tags = [u for u in page_refs(html) if urlsplit(urljoin(origin + "/", u)).netloc != host]
    text = [u for u in re.findall(r"(?:https?:)?//[\w.-]+[^\s'\"<>)]*", html) if urlsplit(u).netloc != host]
    return tags + text


def test_the_checker_finds_fastapis_cdn_pages() -> None:
    """FastAPI's default pages load from a CDN: the check below would catch them."""
    with TestClient(FastAPI()) as plain:
        assert any("cdn" in u for u in foreign_refs(plain.get("/docs").text))
        assert any("cdn" in u for u in foreign_refs(plain.get("/redoc").text))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_doc_pages_load_only_from_this_server(client: TestClient, page: str) -> None:
    response = client.get(page)
    assert response.status_code == 200 and "text/html" in response.headers["content-type"]
    assert foreign_refs(response.text) == []
    refs = page_refs(response.text)
    kinds = {"/docs": (".js", ".css", ".png"), "/redoc": (".js", ".png")}[page]
    for suffix in kinds:  # the script, the stylesheet and the favicon are all referenced ...
        assert any(urlsplit(u).path.endswith(suffix) for u in refs), (suffix, refs)
    for url in refs:  # ... and served, whole
        asset = client.get(url)
        png = urlsplit(url).path.endswith(".png")  # a favicon may be a few hundred bytes
        whole = asset.content.startswith(b"\x89PNG\r\n\x1a\n") if png else len(asset.content) > 1000
        assert asset.status_code == 200 and whole, url
    spec_url = re.search(r"""url: '([^']+)'|spec-url="([^"]+)\"""", response.text)
    assert spec_url and client.get(next(filter(None, spec_url.groups()))).json()["paths"]


def test_every_endpoint_documents_its_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    documented = {(m, p): op for p, ops in spec["paths"].items() for m, op in ops.items()}
    assert set(documented) == set(EXPECTED)
    for key, op in documented.items():
        assert set(op["responses"]) == EXPECTED[key], key
        assert op["summary"] and op["description"] and op["tags"], key
        for code, answer in op["responses"].items():
            assert answer["description"] and answer["description"] != "Successful Response", (key, code)
            assert answer["content"]["application/json"]["schema"], (key, code)
    assert "Retry-After" in documented["post", "/runs"]["responses"]["429"]["headers"]
    assert "Retry-After" in documented["post", "/runs/{attempt_id}/test"]["responses"]["429"]["headers"]


def test_the_bearer_scheme_guards_what_needs_the_token(store, runner, validator) -> None:  # noqa: ANN001
    for token_for_reads in (False, True):
        with TestClient(create_app(store, runner, validator, token="t", token_for_reads=token_for_reads)) as c:
            spec = c.get("/openapi.json").json()
        scheme = spec["components"]["securitySchemes"]["bearerToken"]
        assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
        assert "Authorize" in scheme["description"] and "METALEARN_API_TOKEN" in scheme["description"]
        assert "Authorize" in spec["info"]["description"]
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                guarded = path != "/health" and (method == "post" or token_for_reads)
                assert (op.get("security") == [{"bearerToken": []}]) == guarded, (method, path)
                assert WRITE <= set(op["responses"]) if guarded else not WRITE & set(op["responses"])


def test_each_body_has_an_example_the_server_accepts(client: TestClient, store: Store, auth: dict,
                                                     log_root: Path) -> None:
    spec = client.get("/openapi.json").json()
    bodies = [(p, op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1])
              for p, ops in spec["paths"].items() for m, op in ops.items() if "requestBody" in op]
    # PredictRequest's example is sent to a trained checkpoint in test_predict.py
    assert sorted(bodies) == [("/runs", "RunRequest"), ("/runs/{attempt_id}/predict", "PredictRequest"),
                              ("/runs/{attempt_id}/test", "TestRequest")]
    (run_example,) = spec["components"]["schemas"]["RunRequest"]["examples"]
    (test_example,) = spec["components"]["schemas"]["TestRequest"]["examples"]
    assert RunRequest.model_validate(run_example) and TestRequest.model_validate(test_example)
    response = client.post("/runs", json=run_example, headers=auth)
    assert response.status_code == 202, response.text
    parent = response.json()["id"]
    ckpt = log_root / "last.ckpt"  # the server loads only checkpoints under its log folder
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    store.set_status(parent, schema.COMPLETED, ckpt_path=str(ckpt))
    response = client.post(f"/runs/{parent}/test", json=test_example, headers=auth)
    assert response.status_code == 202, response.text
    assert response.json() == {"id": parent + 1, "status": "queued", "parent_id": parent}


def test_response_models_describe_without_changing(client: TestClient, store: Store, auth: dict) -> None:
    """The responses are the registry's rows as they were: no field added, dropped or recast."""
    attempt = store.create_attempt(name="x", experiment="reptile_amazon", config={"seed": 1})
    store.add_metrics(attempt, [{"name": "val/acc", "step": s, "value": s / 10, "time": time.time()}
                                for s in range(3)])
    store.put_test_results(attempt, [{"group": "books", "metric": "acc", "value": 0.5, "ci95": 0.01, "episodes": 3,
                                      "shots": 5, "queries": 10}])
    store.set_status(attempt, schema.COMPLETED)
    assert client.get(f"/runs/{attempt}").json() == report.show(store, attempt)
    assert client.get(f"/runs/{attempt}/metrics").json() == report.follow(store, attempt)
    assert client.get("/runs").json() == report.jsonable(store.list_attempts())


def test_response_models_pass_rows_of_another_shape(client: TestClient, store: Store,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry row with fields the models do not name, and without some they do, comes
    through as it is (the models document, the registry decides)."""
    attempt = store.create_attempt(name="x", experiment="reptile_amazon")
    rows = [{"attempt_id": attempt, "group": "books", "metric": "mse", "value": 0.25}]
    monkeypatch.setattr(store, "test_results", lambda _id: rows)
    assert client.get(f"/runs/{attempt}").json()["test_results"] == rows
    assert client.get(f"/runs/{attempt}").json() == report.show(store, attempt)


def test_error_bodies_match_their_documented_models(store, runner, validator) -> None:  # noqa: ANN001
    with TestClient(create_app(store, runner, validator, token="t")) as c:
        Problem.model_validate(c.post("/runs", json={"experiment": "reptile_amazon"}).json())  # 401
        Problem.model_validate(c.get("/runs/999").json())  # 404
        ValidationProblem.model_validate(c.get("/runs/x").json())  # FastAPI's own field errors
        ValidationProblem.model_validate(c.get("/runs", params={"status": "bogus"}).json())  # ours
    with TestClient(create_app(store, runner, validator, token=None)) as c:
        Problem.model_validate(c.post("/runs", json={"experiment": "reptile_amazon"}).json())  # 403
