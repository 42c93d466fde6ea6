"""The pages' security over HTTP (no browser): a page write needs a signed-in session and its
form's CSRF token, the session cookie is HttpOnly, SameSite=Strict and random, the token never
reaches a page or URL, redirects stay on this server, every page has its Content-Security-Policy,
reads off loopback need a session, and the JSON API still needs its bearer token."""
from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from http.cookies import SimpleCookie

import pytest
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.registry import Store, schema
from metalearn.web.sessions import COOKIE
from tests.web.conftest import TOKEN, csrf_of

RUN = {"experiment": "reptile_sinusoid", "overrides": ["debug=fast"]}
START_FORM = {"experiment": "reptile_sinusoid", "trainer.max_steps": "4"}
# Every page write, with the form fields it takes besides the CSRF token.
WRITES = ("/start", "/attempts/{queued}/cancel", "/signout")


@pytest.fixture
def pages(store: Store, runner: Runner, validator: OverrideValidator) -> Iterator[TestClient]:
    """The app on loopback (pages readable without signing in), its runner never started."""
    with TestClient(create_app(store, runner, validator, token=TOKEN)) as c:
        yield c


@pytest.fixture
def queued(pages: TestClient, store: Store) -> int:
    """An attempt queued through the JSON API (a cancel would interrupt it)."""
    response = pages.post("/runs", json=RUN, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def sign_in(client: TestClient, next_path: str = "/") -> tuple[str, str]:
    """Sign client in with the token; (the session cookie's value, the pages' CSRF token)."""
    response = client.post("/signin", data={"token": TOKEN, "next": next_path}, follow_redirects=False)
    assert response.status_code == 303, response.text
    cookie = response.cookies.get(COOKIE)
    assert cookie, f"no {COOKIE} cookie set: {response.headers}"
    return cookie, csrf_of(client.get("/").text)


def snapshot(store: Store) -> list[tuple[int, str]]:
    """Every attempt's id and status: a refused write changes neither."""
    return [(r["id"], r["status"]) for r in store.list_attempts(limit=1000)]


def test_a_page_write_without_a_session_is_401_and_changes_nothing(pages: TestClient, store: Store,
                                                                   queued: int) -> None:
    before = snapshot(store)
    for path in WRITES:
        url = path.format(queued=queued)
        response = pages.post(url, data={**START_FORM, "csrf": "anything"}, follow_redirects=False)
        assert response.status_code == 401, f"POST {url} without a session: {response.status_code}"
        assert "sign in" in response.json()["detail"]
        # A cookie naming no session is no session either.
        pages.cookies.set(COOKIE, "made-up-session-id")
        assert pages.post(url, data=START_FORM, follow_redirects=False).status_code == 401
        pages.cookies.clear()
    assert snapshot(store) == before and store.get_attempt(queued)["status"] == schema.QUEUED


def test_a_page_write_without_the_forms_csrf_token_is_403_and_changes_nothing(pages: TestClient, store: Store,
                                                                             queued: int) -> None:
    _cookie, csrf = sign_in(pages)
    before = snapshot(store)
    for path in WRITES:
        url = path.format(queued=queued)
        for fields in ({}, {"csrf": ""}, {"csrf": "wrong-" + csrf}, {"csrf": csrf[:-1]}):
            response = pages.post(url, data={**START_FORM, **fields}, follow_redirects=False)
            assert response.status_code == 403, f"POST {url} with {fields or 'no csrf'}: {response.status_code}"
            assert "CSRF" in response.text
    assert snapshot(store) == before and store.get_attempt(queued)["status"] == schema.QUEUED
    # The same session still writes with its token (the refusals above were the token's).
    assert pages.post(f"/attempts/{queued}/cancel", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert store.get_attempt(queued)["status"] == schema.INTERRUPTED


def test_the_session_cookie_is_httponly_strict_and_random(pages: TestClient) -> None:
    response = pages.post("/signin", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303
    header = response.headers["set-cookie"]
    morsel = SimpleCookie(header)[COOKIE]
    assert morsel["httponly"] is True, header
    assert morsel["samesite"].lower() == "strict", header
    assert morsel["path"] == "/", header
    value = morsel.value
    assert len(value) >= 32, "a session id shorter than 32 characters can be guessed"
    derived = {TOKEN, hashlib.sha256(TOKEN.encode()).hexdigest(), hashlib.md5(TOKEN.encode()).hexdigest(),
               hashlib.sha1(TOKEN.encode()).hexdigest(), base64.urlsafe_b64encode(TOKEN.encode()).decode().rstrip("=")}
    assert not any(d in value or value in d for d in derived), "the cookie holds the token or its plain hash"
    # A second sign-in with the same token gets another value: nothing in it is a function of the token.
    pages.cookies.clear()
    again = pages.post("/signin", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert SimpleCookie(again.headers["set-cookie"])[COOKIE].value != value


def test_sign_out_ends_the_session(pages: TestClient, queued: int, store: Store) -> None:
    cookie, csrf = sign_in(pages)
    assert 'id="signed-in"' in pages.get("/").text
    response = pages.post("/signout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303
    assert COOKIE in response.headers["set-cookie"]  # deleted in the browser
    # The old cookie, sent again by hand, is refused: the server forgot the session.
    pages.cookies.clear()
    pages.cookies.set(COOKIE, cookie)
    assert 'id="signed-in"' not in pages.get("/").text
    refused = pages.post(f"/attempts/{queued}/cancel", data={"csrf": csrf}, follow_redirects=False)
    assert refused.status_code == 401
    assert store.get_attempt(queued)["status"] == schema.QUEUED


def test_the_token_never_reaches_a_page_or_url(pages: TestClient, store: Store, queued: int) -> None:
    sign_in(pages, next_path="/start")
    store.put_attempt({"experiment": "reptile_sinusoid", "algorithm": "reptile", "status": schema.COMPLETED,
                       "config": {"seed": 1}, "overrides": ["seed=1"]},
                      metrics=[{"name": "val/mse", "step": 1, "value": 0.5, "time": 1.0}], test_results=[])
    seen = []
    for url in ("/", "/signin", "/start", f"/attempts/{queued}", f"/attempts/{queued}/test", "/compare",
                f"/compare?ids={queued}&ids=2", "/parts/runs", "/studies/none"):
        response = pages.get(url)
        seen.append((url, response.status_code))
        assert TOKEN not in response.text, f"{url} shows the token"
        assert all(TOKEN not in str(r.url) and TOKEN not in r.headers.get("location", "")
                   for r in [*response.history, response]), f"{url} put the token in a URL"
    assert dict(seen)["/"] == 200, seen
    # Signing in (and a failed sign-in) answers without the token in the URL or page.
    for given in (TOKEN, TOKEN + "x"):
        pages.cookies.clear()
        response = pages.post("/signin", data={"token": given, "next": "/"}, follow_redirects=False)
        assert TOKEN not in response.headers.get("location", "") and TOKEN not in response.text


def test_a_wrong_token_is_401_with_the_message(pages: TestClient) -> None:
    response = pages.post("/signin", data={"token": "not-the-token", "next": "/"}, follow_redirects=False)
    assert response.status_code == 401
    assert 'id="sign-in-error"' in response.text and "wrong" in response.text
    assert COOKIE not in response.headers.get("set-cookie", "")
    assert pages.post("/signin", data={"token": "", "next": "/"}).status_code == 401


@pytest.mark.parametrize("target", ["//evil.example", "//evil.example/x", "https://evil.example/",
                                    "/\\evil.example", "\\\\evil.example", "javascript:alert(1)"])
def test_sign_in_never_redirects_off_site(pages: TestClient, target: str) -> None:
    form = pages.get("/signin", params={"next": target}).text
    assert "evil.example" not in form and "javascript:" not in form
    response = pages.post("/signin", data={"token": TOKEN, "next": target}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    # A path on this server is kept.
    pages.cookies.clear()
    kept = pages.post("/signin", data={"token": TOKEN, "next": "/start?experiment=x"}, follow_redirects=False)
    assert kept.headers["location"] == "/start?experiment=x"


def test_every_page_has_the_content_security_policy(pages: TestClient, queued: int) -> None:
    def policy(url: str) -> tuple[int, str]:
        response = pages.get(url, follow_redirects=False)
        html = response.headers.get("content-type", "").startswith("text/html")
        assert html or response.status_code >= 300, f"GET {url}: {response.status_code} is not HTML"
        return response.status_code, response.headers.get("content-security-policy", "")

    anonymous = {url: policy(url) for url in ["/signin", "/"]}
    sign_in(pages)
    signed = {url: policy(url) for url in ["/", "/parts/runs", "/start", f"/attempts/{queued}",
                                           f"/attempts/{queued}/test", "/compare", f"/compare?ids={queued}",
                                           "/studies/none", "/no-such-page"]}
    assert all(signed[url][0] == 200 for url in ("/", "/parts/runs", "/start", f"/attempts/{queued}")), signed
    for url, (code, csp) in {**anonymous, **signed}.items():
        if code == 200 or csp:  # every page; a JSON error (a 404) runs nothing
            assert "script-src 'self'" in csp and "style-src 'self'" in csp, f"{url}: {csp!r}"
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp, f"{url}: {csp!r}"


def test_reads_off_loopback_need_a_session(store: Store, runner: Runner, validator: OverrideValidator) -> None:
    with TestClient(create_app(store, runner, validator, token=TOKEN, token_for_reads=True)) as c:
        for url in ("/", "/parts/runs", "/start", "/compare", "/attempts/1"):
            response = c.get(url, follow_redirects=False)
            assert response.status_code == 303, f"GET {url} without a session: {response.status_code}"
            assert response.headers["location"].startswith("/signin"), response.headers["location"]
        assert c.get("/?sort=score", follow_redirects=False).headers["location"] == "/signin?next=%2F%3Fsort%3Dscore"
        way_in = c.get("/signin?next=%2F%3Fsort%3Dscore", follow_redirects=False)  # open to all
        assert way_in.status_code == 200 and 'id="sign-in-form"' in way_in.text
        assert 'value="/?sort=score"' in way_in.text
        back = c.post("/signin", data={"token": TOKEN, "next": "/?sort=score"}, follow_redirects=False)
        assert back.headers["location"] == "/?sort=score"
        c.cookies.clear()
        assert c.get("/runs").status_code == 401  # the JSON API as before
        sign_in(c)
        assert c.get("/", follow_redirects=False).status_code == 200
        assert 'id="runs"' in c.get("/").text
        assert c.get("/parts/runs", follow_redirects=False).status_code == 200
        assert c.get("/runs").status_code == 401  # the cookie is for pages only


def test_the_json_api_refuses_a_write_with_the_cookie_alone(pages: TestClient, store: Store, queued: int) -> None:
    _cookie, csrf = sign_in(pages)
    before = snapshot(store)
    refused = [pages.post("/runs", json=RUN, headers={"X-CSRF": csrf}),
               pages.post(f"/runs/{queued}/cancel"),
               pages.post(f"/runs/{queued}/test", json={})]
    assert [r.status_code for r in refused] == [401, 401, 401], [r.text for r in refused]
    assert snapshot(store) == before


def test_a_page_write_from_another_origin_is_403_and_changes_nothing(pages: TestClient, store: Store,
                                                                    queued: int) -> None:
    """A browser names the page a form came from (Origin): another site's form is refused before
    its body is read, the sign-in form included; the same origin, or no Origin, passes."""
    _cookie, csrf = sign_in(pages)
    before = snapshot(store)
    for url in ("/signin", *(path.format(queued=queued) for path in WRITES)):
        for origin in ("https://evil.example", "http://testserver.evil.example", "null"):
            response = pages.post(url, data={**START_FORM, "csrf": csrf, "token": TOKEN},
                                  headers={"Origin": origin}, follow_redirects=False)
            assert response.status_code == 403, f"POST {url} from {origin}: {response.status_code}"
            assert "origin" in response.text.lower()
    assert snapshot(store) == before
    response = pages.post(f"/attempts/{queued}/cancel", data={"csrf": csrf},
                          headers={"Origin": "http://testserver"}, follow_redirects=False)
    assert response.status_code == 303
