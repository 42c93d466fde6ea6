"""The compare page (attempts side by side) and the study page (an Optuna sweep's trials):
what each shows, read back from the HTML and the SVG coordinates, hostile text escaped, and
the answers to ids or names that do not exist."""
from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.registry import Store
from metalearn.web.compare_view import MAX_POINTS, comparison
from tests.api.conftest import TOKEN

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
NS = {"s": "http://www.w3.org/2000/svg"}


@pytest.fixture
def pages(store: Store, runner: Runner, validator: OverrideValidator) -> Iterator[TestClient]:
    """The app's pages over the temp registry (reads need no session on loopback)."""
    with TestClient(create_app(store, runner, validator, token=TOKEN)) as c:
        yield c


def element(html: str, tag: str, ident: str) -> ET.Element:
    """The element <tag id=ident> of the page, parsed (our templates write it well-formed)."""
    found = re.search(rf'<{tag}\b[^>]*\bid="{re.escape(ident)}"', html)
    assert found, f"no <{tag} id={ident!r}> on the page"
    depth = 0
    for mark in re.finditer(rf"<(/?){tag}\b", html[found.start():]):  # to the matching end tag
        depth += -1 if mark.group(1) else 1
        if depth == 0:
            end = html.index(">", found.start() + mark.start()) + 1
            return ET.fromstring(html[found.start():end])
    raise AssertionError(f"<{tag} id={ident!r}> is not closed")


def svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(m) for m in re.findall(r"<svg\b.*?</svg>", html, re.S)]


def cells(row: ET.Element) -> list[str]:
    return ["".join(c.itertext()).strip() for c in row]


def points(polyline: ET.Element) -> list[tuple[float, float]]:
    return [(float(x), float(y)) for x, y in (p.split(",") for p in polyline.get("points", "").split())]


def curve(store: Store, attempt: int, name: str, values: list[float]) -> None:
    store.add_metrics(attempt, [{"name": name, "step": 10 * i, "value": v, "time": time.time()}
                                for i, v in enumerate(values)])


def result(group: str, value: float, ci95: float) -> dict[str, Any]:
    return {"group": group, "metric": "acc", "value": value, "ci95": ci95, "episodes": 100, "shots": 1,
            "queries": 15}


# -- compare -------------------------------------------------------------------------------------

def config(seed: int, shots: int, note: str) -> dict[str, Any]:
    return {"seed": seed, "note": note, "data": {"shots": shots, "ways": 5}, "trainer": {"max_steps": 100},
            "objective": {"metric": "acc", "mode": "max"}}


@pytest.fixture
def two(store: Store) -> tuple[int, int]:
    """Two finished attempts: one named by a hostile user, with a hostile override and note."""
    a = store.create_attempt(experiment="maml_omniglot", algorithm="maml", status="completed",
                             config=config(1, 1, "plain"), overrides=["seed=1"])
    b = store.create_attempt(experiment=HOSTILE, algorithm="maml", status="completed",
                             config=config(2, 5, HOSTILE), overrides=[f"+note={HOSTILE}"])
    for attempt, acc, loss in ((a, [0.2, 0.5, 0.7], [2.0, 1.5, 1.0]), (b, [0.3, 0.6, 0.8], [2.2, 1.2, 0.9])):
        curve(store, attempt, "val/acc", acc)
        curve(store, attempt, "val/acc_pre", [0.2, 0.2, 0.2])
        curve(store, attempt, "train/loss", loss)
        for extra in ("train/a", "train/b", "train/c", "train/d"):
            curve(store, attempt, extra, [1.0, 0.5])
        curve(store, attempt, "test/acc", [acc[-1] - 0.05])
        curve(store, attempt, "test/acc_ci95", [0.01])
        store.put_test_results(attempt, [result("omniglot_a", acc[-1] - 0.1, 0.02),
                                         result("omniglot_b", acc[-1], 0.03)])
        curve(store, attempt, "train/e_pre", [1.0, 0.5])  # a before-adapting value alone: charted
    curve(store, a, "train/only_a", [1.0, 2.0])  # one attempt's: no chart
    return a, b


def test_compare_shows_differences_side_by_side(pages: TestClient, two: tuple[int, int]):
    a, b = two
    response = pages.get(f"/compare?ids={a}&ids={b}")
    assert response.status_code == 200, response.text
    html = response.text
    assert "<img" not in html and ESCAPED in html  # the hostile experiment name and note, escaped
    assert f'href="/attempts/{a}"' in html and f'href="/attempts/{b}"' in html

    diff = element(html, "table", "config-diff")
    rows = {cells(r)[0]: cells(r)[1:] for r in diff.iter("tr") if r.get("data-key")}
    assert rows == {"data.shots": ["1", "5"], "note": ["plain", HOSTILE], "seed": ["1", "2"]}  # max_steps, ways: equal

    side = element(html, "table", "metrics-side")
    finals = {r.get("data-metric"): cells(r)[1:] for r in side.iter("tr") if r.get("data-metric")}
    # accuracy in percent with two decimals, as on the run page; other metrics to 4 significant digits
    assert finals["val/acc"] == ["70.00", "80.00"] and finals["train/loss"] == ["1", "0.9"]
    assert finals["test/acc"] == ["65.00 ± 1.00", "75.00 ± 1.00"] and "test/acc_ci95" not in finals
    assert [c.split(" test/")[0] for c in finals["meta-test score"]] == ["65.00 ± 1.00", "75.00 ± 1.00"]
    best = [td for r in side.iter("tr") if r.get("data-metric") == "val/acc" for td in r
            if "best" in td.get("class", "")]
    assert cells_text(best) == ["80.00"]  # the objective's best final value is marked

    curves = element(html, "div", "compare-curves")
    charts = {s.get("data-metric"): s for s in curves.iter(f"{{{NS['s']}}}svg")}
    assert set(charts) == {"val/acc", "train/loss", "train/a", "train/b", "train/c", "train/d", "train/e_pre"}
    for chart in charts.values():
        lines = chart.findall(".//s:polyline", NS)
        assert len(lines) == 2
        names = [line.get("data-series") for line in lines]
        assert names == [f"#{a} maml_omniglot (seed 1)", f"#{b} {HOSTILE} (seed 2)"]  # readable labels
    details = curves.find("details")
    assert details is not None and len(details.findall(".//s:svg", NS)) == 3  # beyond the first four, folded

    bars = element(html, "svg", "compare-bars")
    labels = [t.find("s:title", NS).tail for t in bars.findall(".//s:text[@class='group-label']", NS)]
    assert labels == ["omniglot_a", "omniglot_b"]
    assert [t.text for t in bars.findall(".//s:text[@class='axis-label']", NS)] == ["acc (%)"]
    tips = [r.find("s:title", NS).text for r in bars.findall(".//s:rect[@class='bar']", NS)]
    assert tips[0] == f"omniglot_a · #{a} maml_omniglot (seed 1): 60 ± 2"  # 0.6 ± 0.02 drawn in percent
    assert len(bars.findall(".//s:rect[@class='bar']", NS)) == 4  # 2 groups x 2 attempts
    assert len(bars.findall(".//s:path[@class='whisker']", NS)) == 4


def cells_text(tds: list[ET.Element]) -> list[str]:
    return ["".join(td.itertext()).strip() for td in tds]


def test_compare_without_meta_test_draws_an_empty_bar_chart(pages: TestClient, store: Store):
    ids = [store.create_attempt(experiment="e", status="running", config={"seed": s}) for s in (1, 2)]
    html = pages.get(f"/compare?ids={ids[0]}&ids={ids[1]}").text
    assert "no data yet" in ET.tostring(element(html, "svg", "compare-bars"), encoding="unicode")
    assert "share no logged curve" in html


def test_long_curves_are_thinned_keeping_the_last_step(registry_url: str):
    """Thinned in SQL (window functions), on each backend."""
    store = Store(registry_url)
    ids = [store.create_attempt(experiment="e", status="completed", config={"seed": s}) for s in (1, 2)]
    for attempt, steps in zip(ids, (2_501, 50), strict=True):
        store.add_metrics(attempt, [{"name": "val/acc", "step": s, "value": s / 10_000, "time": 0.0}
                                    for s in range(steps)])
    long, short = comparison(store, ids).curves["val/acc"]
    assert len(short) == 50 and short[-1] == (49.0, 0.0049)
    assert len(long) <= MAX_POINTS + 1 and long[-1] == (2500.0, 0.25) and long[0] == (0.0, 0.0)
    gaps = {b[0] - a[0] for a, b in zip(long[:-2], long[1:-1], strict=True)}
    assert gaps == {7.0}  # every 7th step (2,501 rows / 400), evenly


def test_compare_asks_for_two_attempts(pages: TestClient, two: tuple[int, int]):
    for query in ("", f"?ids={two[0]}", f"?ids={two[0]}&ids={two[0]}"):
        response = pages.get(f"/compare{query}")
        assert response.status_code == 200 and "Compare selected" in response.text
        assert 'id="config-diff"' not in response.text


def test_compare_refuses_unknown_and_bad_ids(pages: TestClient, two: tuple[int, int]):
    response = pages.get(f"/compare?ids={two[0]}&ids=98765")
    assert response.status_code == 404 and "no attempt with id 98765" in response.text
    response = pages.get(f"/compare?ids={two[0]}&ids=%3Cb%3E")
    assert response.status_code == 422 and "&#39;&lt;b&gt;&#39; is not an attempt id" in response.text
    response = pages.get("/compare?" + "&".join(f"ids={i}" for i in range(1, 14)))
    assert response.status_code == 422 and "at most 12" in response.text


# -- study ---------------------------------------------------------------------------------------

def trial_attempt(store: Store, study: str, number: int, *, status: str, overrides: list[str],
                  metric: str = "val/mse", mode: str = "min") -> int:
    """An attempt the sweeper launched as trial number of study."""
    return store.create_attempt(
        experiment="maml_sinusoid", algorithm="maml", status=status, study=study, trial=number,
        config={"optimized_metric": metric, "objective": {"metric": metric.split("/")[-1], "mode": mode}},
        overrides=[*overrides, f"study.name={study}", f"study.trial={number}"])


@pytest.fixture
def optuna_study(store: Store, sqlite_url: str) -> dict[str, Any]:
    """A minimised study in the registry's database as the sweeper keeps it: trials with
    attempts (one failed), one that reused an attempt's value, one with a hostile choice."""
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="sweep", storage=sqlite_url, direction="minimize")
    space = {"algorithm.inner_lr": FloatDistribution(1e-4, 1e-1, log=True),
             "algorithm.inner_steps": IntDistribution(1, 3),
             "model.act": CategoricalDistribution(["relu", HOSTILE])}
    plan = [({"algorithm.inner_lr": 0.05, "algorithm.inner_steps": 1, "model.act": "relu"}, 0.5),
            ({"algorithm.inner_lr": 0.0002, "algorithm.inner_steps": 2, "model.act": HOSTILE}, 0.7),
            ({"algorithm.inner_lr": 0.01, "algorithm.inner_steps": 3, "model.act": "relu"}, 0.3),
            ({"algorithm.inner_lr": 0.001, "algorithm.inner_steps": 2, "model.act": "relu"}, None),  # fails
            ({"algorithm.inner_lr": 0.02, "algorithm.inner_steps": 1, "model.act": "relu"}, 0.4),
            ({"algorithm.inner_lr": 0.05, "algorithm.inner_steps": 1, "model.act": "relu"}, 0.5)]  # reused
    attempts = []
    for number, (params, value) in enumerate(plan):
        study.enqueue_trial(params)
        trial = study.ask(space)
        overrides = [f"{k}={v}" for k, v in params.items()]
        if number == 5:
            trial.set_user_attr("reused_attempt", attempts[0])
            study.tell(trial, value)
            continue
        attempts.append(trial_attempt(store, "sweep", number, status="failed" if value is None else "completed",
                                      overrides=overrides))
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)
    return {"attempts": attempts, "values": [v for _, v in plan]}


def test_study_page_reads_the_sweepers_storage(pages: TestClient, optuna_study: dict[str, Any]):
    response = pages.get("/studies/sweep")
    assert response.status_code == 200, response.text
    html = response.text
    assert "<img" not in html and ESCAPED in html
    table = element(html, "table", "trials")
    head = cells(table.find("thead/tr"))
    assert head == ["trial", "attempt", "state", "val/mse", "algorithm.inner_lr", "algorithm.inner_steps", "model.act"]
    rows = [cells(r) for r in table.find("tbody")]
    ids = optuna_study["attempts"]
    assert [r[:4] for r in rows] == [
        ["0", f"#{ids[0]}", "completed", "0.5"], ["1", f"#{ids[1]}", "completed", "0.7"],
        ["2", f"#{ids[2]}", "completed", "0.3"], ["3", f"#{ids[3]}", "failed", ""],
        ["4", f"#{ids[4]}", "completed", "0.4"], ["5", f"reused #{ids[0]}", "complete", "0.5"]]
    assert rows[1][4:] == ["0.0002", "2", HOSTILE] and rows[2][4:] == ["0.01", "3", "relu"]
    assert 'class="status-completed best"' in html and "#2: 0.3" in html  # the best trial (minimised)

    history = element(html, "svg", "history")
    dots = history.findall(".//s:circle[@class='trial']", NS)
    assert [int(d.get("data-trial")) for d in dots] == [0, 1, 2, 4, 5]
    best = points(history.find(".//s:polyline[@class='best-so-far']", NS))
    ys = [y for _, y in best]
    assert ys == sorted(ys) and ys[0] < ys[-1]  # minimised: the best value falls, so its line goes down the SVG
    y_of = {int(d.get("data-trial")): float(d.get("cy")) for d in dots}
    assert ys[-1] == pytest.approx(y_of[2]) and ys[0] == pytest.approx(y_of[0])  # ends at the best trial's dot

    parallel = element(html, "svg", "parallel")
    lines = parallel.findall(".//s:polyline[@class='trial-line']", NS)
    assert sorted(int(line.get("data-trial")) for line in lines) == [0, 1, 2, 4, 5]  # each finished trial
    assert all(len(points(line)) == 4 for line in lines)  # three parameters and the value
    assert lines[-1].get("data-trial") == "2"  # the best drawn last, on top
    assert any("· log" in (t.text or "") for t in parallel.findall(".//s:text/s:title", NS))  # inner_lr spans 3 decades


def test_study_read_from_the_storage_on_each_backend(registry_url: str):
    """The sweeper's storage is the registry's database (its driver URL, as the sweeper makes it)."""
    optuna = pytest.importorskip("optuna")
    from optuna.distributions import FloatDistribution

    from metalearn.registry.engine import normalize_url
    from metalearn.web.study_view import study_of

    store = Store(registry_url)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = normalize_url(registry_url).render_as_string(hide_password=False)
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    for number, lr in enumerate((0.1, 0.3)):
        study.enqueue_trial({"lr": lr})
        trial = study.ask({"lr": FloatDistribution(0.01, 1.0)})
        study.tell(trial, lr * 2)
        assert trial.number == number
    seen = study_of(store, "s")
    assert seen.source == "optuna" and seen.direction == "maximize" and seen.params == ["lr"]
    assert [(t.number, t.state, t.params["lr"], t.value, t.attempt_id) for t in seen.trials] == [
        (0, "complete", pytest.approx(0.1), pytest.approx(0.2), None),
        (1, "complete", pytest.approx(0.3), pytest.approx(0.6), None)]


def test_study_page_from_attempts_alone(pages: TestClient, store: Store):
    """Without an Optuna storage of the study: values are the best val/acc each completed
    attempt reached (maximised), parameters the overrides that vary."""
    plan = [("0.1", 0.5, "completed"), ("0.01", 0.8, "completed"), ("0.05", 0.6, "completed"), ("0.2", None, "running")]
    for number, (lr, peak, status) in enumerate(plan):
        attempt = trial_attempt(store, "by-attempts", number, status=status, metric="val/acc", mode="max",
                                overrides=["hparams_search=x", "trainer.max_steps=50", f"algorithm.inner_lr={lr}"])
        curve(store, attempt, "val/acc", [0.1, peak or 0.3, 0.2])
    html = pages.get("/studies/by-attempts").text
    table = element(html, "table", "trials")
    assert cells(table.find("thead/tr")) == ["trial", "attempt", "state", "val/acc", "algorithm.inner_lr"]
    assert [r[2:] for r in map(cells, table.find("tbody"))] == [
        ["completed", "0.5", "0.1"], ["completed", "0.8", "0.01"], ["completed", "0.6", "0.05"], ["running", "", "0.2"]]
    assert 'data-live="active"' in html  # a trial still runs: the body refreshes itself
    ys = [y for _, y in points(element(html, "svg", "history").find(".//s:polyline[@class='best-so-far']", NS))]
    assert ys == sorted(ys, reverse=True) and ys[0] > ys[-1]  # maximised: the line only climbs
    assert len(element(html, "svg", "parallel").findall(".//s:polyline[@class='trial-line']", NS)) == 3
    part = pages.get("/parts/studies/by-attempts")
    assert part.headers["X-Live"] == "active" and 'id="trials"' in part.text


def test_unknown_study_is_404(pages: TestClient):
    response = pages.get("/studies/" + HOSTILE.replace(" ", "%20"))
    assert response.status_code == 404
    assert "no study called" in response.text and "<img" not in response.text
    assert pages.get("/parts/studies/nothing").status_code == 404
