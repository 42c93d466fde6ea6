"""The pages in a real browser: Debian's headless Chromium, driven by chromedriver, against a real
`metalearn serve` (one per module, shared by these tests), resolving no host but this machine.

Signing in through the form; starting a debug=fast run from the start form and watching its
status and curves update in place until it completes; meta-testing it with another K from the
meta-test form; comparing the two; a value the API refuses shown beside its field; the layer
builder; a study's page; hostile names shown as text. Every page is also checked for the
Content-Security-Policy violations the browser reports (an inline script or style it refused).
With METALEARN_SCREENSHOTS=<folder> each page's screenshot is saved there (docs/web.md's)."""
from __future__ import annotations

import json
import re
import sqlite3
import time
from typing import Any

import pytest

from metalearn.registry import Store, schema
from tests.web.conftest import LIVE_TOKEN, WebServer, browser_missing, screenshot

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=str(browser_missing()))

if browser_missing() is None:
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

# The fastest experiment that trains, checkpoints and logs curves with debug=fast and no data to
# fetch (`metalearn train experiment=X debug=fast registry=off`, one thread, on a loaded 2-core
# Xeon: reptile_sinusoid 7.1 s, finetune_sinusoid 6.7 s, protonet_omniglot 8.3 s, maml_sinusoid
# 9.5 s; fine-tuning is the least meta-learning of them).
EXPERIMENT = "reptile_sinusoid"
RUN_S = 600.0  # a training or meta-test process: seconds on an idle machine, minutes on a loaded one
PAGE_S = 30.0  # a page or a live part to show
TEST_SHOTS = 5  # the meta-test's K (the experiment trains with data.shots 10)
HOSTILE_NAME = "<img src=x onerror=alert(1)>"
HOSTILE_OVERRIDE = "x=<script>alert(2)</script>"
STUDY = "sinusoid_lr"
ATTEMPT_URL = re.compile(r"/attempts/(\d+)$")


def wait(driver: Any, what: str, condition: Any, timeout: float = PAGE_S) -> Any:
    """condition(driver)'s first truthy value, polled; a timeout names what was awaited."""
    # A live part swapped in (static/live.js) replaces the elements a condition read: read again.
    return WebDriverWait(driver, timeout, poll_frequency=0.25,
                         ignored_exceptions=(StaleElementReferenceException,)).until(
        condition, message=f"waited {timeout:.0f} s for {what} on {driver.current_url}")


def css(driver: Any, selector: str) -> list[Any]:
    return driver.find_elements(By.CSS_SELECTOR, selector)


def go(driver: Any, server: WebServer, path: str) -> None:
    """Open path and check the page loaded whole under its policy (no refused script or style);
    what the page before reported is checked first, against that page."""
    policy_errors(driver)
    driver.get(server.base + path)
    policy_errors(driver)


def policy_errors(driver: Any) -> None:
    """Fail on an error the browser's console reported since the last check: a script or style
    the Content-Security-Policy refused, a resource that did not load (another host, a missing
    file). The page's own status (a refused form answers 401 or 422) and a missing favicon are
    not errors of the page."""
    page = driver.current_url.split("?")[0]
    refused = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"
               and "favicon.ico" not in e["message"] and e["message"].split(" ", 1)[0].split("?")[0] != page]
    assert not refused, f"{driver.current_url}: the browser reported {refused}"


def no_alert(driver: Any) -> None:
    """No script of a page opened an alert."""
    with pytest.raises(NoAlertPresentException):
        text = driver.switch_to.alert.text
        pytest.fail(f"{driver.current_url} opened an alert: {text!r}")


def sign_in(driver: Any, server: WebServer) -> None:
    """Sign the browser in through the sign-in form (nothing when it is signed in already)."""
    go(driver, server, "/")
    if css(driver, "#signed-in"):
        return
    go(driver, server, "/signin")
    driver.find_element(By.ID, "token").send_keys(LIVE_TOKEN)
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, "span#signed-in after signing in", lambda d: css(d, "#signed-in"))


def set_field(driver: Any, element_id: str, value: str) -> None:
    """Type value into an input, or pick it in a select."""
    element = driver.find_element(By.ID, element_id)
    if element.tag_name == "select":
        Select(element).select_by_value(value)
    else:
        element.clear()
        element.send_keys(value)


def landed_attempt(driver: Any, what: str, other_than: int | None = None) -> int:
    """The id of the attempt page the browser was sent to."""
    def attempt_page(d: Any) -> int | None:
        found = ATTEMPT_URL.search(d.current_url.split("?")[0])
        return int(found.group(1)) if found and int(found.group(1)) != other_than else None

    return wait(driver, what, attempt_page)


def wait_until_finished(driver: Any, server: WebServer, attempt: int) -> str:
    """Wait on the attempt's page, never reloading it, until span#run-status reads a finished
    status; that status. The page's own polling (static/live.js) is what changes it."""
    driver.execute_script("window.notReloaded = true")
    status = wait(driver, f"span#run-status of attempt {attempt} to read completed, failed or interrupted "
                  f"(updated in place by the page's polling)",
                  lambda d: (s := d.find_element(By.ID, "run-status").text) in schema.TERMINAL and s, RUN_S)
    assert driver.execute_script("return window.notReloaded === true"), "the page was reloaded"
    if status != schema.COMPLETED:
        log = css(driver, "#log-tail")
        pytest.fail(f"attempt {attempt} ended {status}; its log ends:\n{log[0].text[-3000:] if log else ''}\n"
                    f"server log:\n{server.log_tail()}")
    return status


@pytest.fixture(scope="module")
def store(web_server: WebServer) -> Store:
    """The server's registry, written by the tests directly (a study, a hostile name)."""
    return Store(web_server.registry)


def test_sign_in_through_the_form(browser: Any, web_server: WebServer) -> None:
    go(browser, web_server, "/signin")
    screenshot(browser, "signin")
    browser.find_element(By.ID, "token").send_keys("not-the-token")
    browser.find_element(By.ID, "sign-in").click()
    error = wait(browser, "p#sign-in-error after a wrong token", lambda d: css(d, "#sign-in-error"))
    assert "wrong" in error[0].text and not css(browser, "#signed-in")
    policy_errors(browser)  # the 401 is the page's own status
    browser.find_element(By.ID, "token").send_keys(LIVE_TOKEN)
    browser.find_element(By.ID, "sign-in").click()
    wait(browser, "span#signed-in after signing in", lambda d: css(d, "#signed-in"))
    # The session cookie is out of the page's scripts' reach and sent to this site only.
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["metalearn_session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict", session
    assert "metalearn_session" not in browser.execute_script("return document.cookie")
    assert LIVE_TOKEN not in browser.page_source and LIVE_TOKEN not in browser.current_url


def test_a_refused_value_is_shown_beside_its_field(browser: Any, web_server: WebServer, store: Store) -> None:
    sign_in(browser, web_server)
    go(browser, web_server, "/start")
    Select(browser.find_element(By.ID, "experiment")).select_by_value(EXPERIMENT)
    wait(browser, f"/start to reload with experiment={EXPERIMENT}",
         lambda d: f"experiment={EXPERIMENT}" in d.current_url and css(d, "#start-form"))
    policy_errors(browser)

    # The layer builder: choosing the layers model shows it; a layer added lands in its list and
    # in the hidden model.layers field the form sends.
    set_field(browser, "field-model", "layers")
    builder = browser.find_element(By.ID, "layer-builder")
    wait(browser, "div#layer-builder to show for model=layers", lambda d: builder.is_displayed())
    before = len(css(browser, "#layers li"))
    Select(browser.find_element(By.ID, "layer-kind")).select_by_value("Linear")
    for arg in css(browser, '.layer-args[data-kind="Linear"] input[data-arg="out_features"]'):
        arg.clear()
        arg.send_keys("32")
    browser.find_element(By.ID, "add-layer").click()
    wait(browser, "a layer added to ol#layers", lambda d: len(css(d, "#layers li")) == before + 1)
    layers = json.loads(browser.find_element(By.ID, "field-model-layers").get_attribute("value"))
    assert layers[-1]["name"] == "Linear" and layers[-1]["out_features"] == 32, layers
    screenshot(browser, "start")

    # data.shots=0: the browser's own check of the number field is switched off, so the server's
    # (the JSON API's validator) answers, beside the field, and nothing is queued.
    go(browser, web_server, f"/start?experiment={EXPERIMENT}")
    count = len(store.list_attempts())
    set_field(browser, "field-data-shots", "0")
    browser.execute_script("document.getElementById('start-form').noValidate = true")
    browser.find_element(By.ID, "start-submit").click()
    message = wait(browser, "span#error-data-shots after submitting data.shots=0",
                   lambda d: css(d, "#error-data-shots"))[0].text
    assert "data.shots" in message or ">=" in message or "at least" in message, message
    assert browser.current_url.split("?")[0].endswith("/start"), browser.current_url
    assert browser.find_element(By.ID, "field-data-shots").get_attribute("value") == "0"
    assert len(store.list_attempts()) == count, "a refused form queued an attempt"
    policy_errors(browser)


def test_a_study_page(browser: Any, web_server: WebServer, store: Store) -> None:
    objective = {"_target_": "metalearn.objectives.Regression", "metric": "mse", "mode": "min"}
    for trial, (lr, steps) in enumerate(((0.3, 1), (0.1, 5), (0.03, 3), (0.01, 10), (0.003, 5))):
        overrides = [f"experiment={EXPERIMENT}", f"algorithm.optimizer.lr={lr}", f"algorithm.inner_steps={steps}"]
        metrics = [{"name": "val/mse", "step": step, "value": 4.0 / (step + 1) + abs(lr - 0.03) * 10 + 0.1 / steps,
                    "time": float(step)} for step in range(1, 6)]
        store.put_attempt({"name": f"{EXPERIMENT}/{trial}", "experiment": EXPERIMENT, "algorithm": "reptile",
                           "status": schema.COMPLETED, "study": STUDY, "trial": trial, "overrides": overrides,
                           "config": {"objective": objective, "seed": trial, "optimized_metric": "val/mse"}},
                          metrics=metrics, test_results=[])
    sign_in(browser, web_server)
    go(browser, web_server, f"/studies/{STUDY}")
    assert len(css(browser, "#trials tbody tr[data-trial]")) == 5
    assert css(browser, "svg#history") and css(browser, "svg#parallel")
    no_alert(browser)
    screenshot(browser, "study")


@pytest.mark.slow  # two processes (train, meta-test) through the server's queue: 30-60 s, minutes when loaded
def test_a_run_from_the_start_form_to_its_meta_test_and_a_comparison(browser: Any, web_server: WebServer,
                                                                    store: Store) -> None:
    sign_in(browser, web_server)
    go(browser, web_server, f"/start?experiment={EXPERIMENT}")
    set_field(browser, "field-debug", "fast")
    browser.find_element(By.ID, "start-submit").click()
    trained = landed_attempt(browser, "the start form to send the browser to /attempts/{new id}")
    assert store.get_attempt(trained)["experiment"] == EXPERIMENT
    assert "debug=fast" in store.get_attempt(trained)["overrides"]
    policy_errors(browser)

    wait_until_finished(browser, web_server, trained)
    wait(browser, "a curve (svg polyline) in div#curves", lambda d: css(d, "#curves svg.chart polyline"))
    assert css(browser, "#curves svg.chart[data-metric]")
    # Loaded again, the page shows what the run recorded at its end: its config and checkpoint.
    go(browser, web_server, f"/attempts/{trained}")
    assert browser.find_element(By.ID, "checkpoint").text.endswith(".ckpt")
    assert css(browser, "#config-tree details") and css(browser, "#curves svg.chart polyline")
    screenshot(browser, "run")
    screenshot(browser, "run-top", max_height=1000)  # the README's

    # Meta-test the checkpoint with another K.
    browser.find_element(By.ID, "meta-test-link").click()
    wait(browser, "the meta-test form", lambda d: d.current_url.endswith(f"/attempts/{trained}/test")
         and css(d, "#test-form"))
    policy_errors(browser)
    set_field(browser, "field-shots", str(TEST_SHOTS))
    screenshot(browser, "meta-test")
    browser.find_element(By.ID, "test-submit").click()
    tested = landed_attempt(browser, "the meta-test form to send the browser to the test attempt's page",
                            other_than=trained)
    wait_until_finished(browser, web_server, tested)
    wait(browser, "table#test-results on the test attempt's page", lambda d: css(d, "#test-results"))
    results = store.test_results(tested)
    assert results and {r["shots"] for r in results} == {TEST_SHOTS}, results
    assert store.get_attempt(tested)["parent_id"] == trained
    screenshot(browser, "test-run")

    # Compare the two from the runs table.
    go(browser, web_server, "/")
    screenshot(browser, "runs")
    for attempt in (trained, tested):
        browser.find_element(By.CSS_SELECTOR, f'#rows tr[data-id="{attempt}"] input[name="ids"]').click()
    browser.find_element(By.ID, "compare-selected").click()
    diff = wait(browser, "table#config-diff on /compare", lambda d: css(d, "#config-diff"))[0]
    assert "/compare?" in browser.current_url and f"ids={trained}" in browser.current_url
    assert "shots" in diff.text, diff.text
    policy_errors(browser)
    screenshot(browser, "compare")


def test_hostile_names_are_shown_as_text(browser: Any, web_server: WebServer, store: Store) -> None:
    attempt = store.create_attempt(name=HOSTILE_NAME, experiment=EXPERIMENT, algorithm="reptile",
                                   status=schema.COMPLETED, overrides=[HOSTILE_OVERRIDE], tags=[HOSTILE_NAME])
    sign_in(browser, web_server)
    for path in ("/", f"/attempts/{attempt}"):
        go(browser, web_server, path)
        time.sleep(0.5)  # an onerror handler would run once the broken image fails to load
        no_alert(browser)
        shown = browser.find_elements(By.XPATH, f"//*[text()[contains(., '{HOSTILE_NAME}')]]")
        assert shown, f"{path}: the name is not shown as text"
        assert not css(browser, 'img[src="x"]') and not css(browser, "img[onerror]"), path
        scripts = [s.get_attribute("src") for s in css(browser, "script")]
        assert all(s and s.startswith(web_server.base + "/static/") for s in scripts), scripts
    # On the runs table the name's element holds exactly the name.
    go(browser, web_server, "/")
    row = browser.find_element(By.CSS_SELECTOR, f'#rows tr[data-id="{attempt}"]')
    assert HOSTILE_NAME in [e.text for e in row.find_elements(By.XPATH, ".//*")], row.text
    go(browser, web_server, f"/attempts/{attempt}")
    assert HOSTILE_OVERRIDE in browser.find_element(By.TAG_NAME, "body").text
    no_alert(browser)


def test_live_parts_stop_when_their_attempt_is_gone(browser: Any, web_server: WebServer, store: Store) -> None:
    """A live part answered 404 (its attempt deleted from the registry) is marked gone and not
    fetched again every 2 s for as long as the tab stays open; a 5xx or a dropped connection is
    retried (the server restarting)."""
    attempt = store.create_attempt(name="short-lived", experiment=EXPERIMENT, algorithm="reptile",
                                   status=schema.RUNNING)
    sign_in(browser, web_server)
    go(browser, web_server, f"/attempts/{attempt}")
    assert css(browser, '#run-state[data-live="active"]')
    with sqlite3.connect(web_server.registry.removeprefix("sqlite:///")) as db:
        db.execute(f"DELETE FROM {schema.attempts.name} WHERE id = ?", (attempt,))
    wait(browser, "the status part marked gone", lambda d: css(d, '#run-state[data-live="gone"]'))
    no_alert(browser)
