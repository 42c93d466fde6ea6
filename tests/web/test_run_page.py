"""The page of one attempt (/attempts/{id}) over HTTP, no browser: what it shows from the
registry and the log files, escaped; its curves, meta-test table and chart; its buttons; its
live parts; 404 for an unknown id; a session needed off loopback."""
from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from metalearn.api.app import create_app
from metalearn.api.overrides import OverrideValidator
from metalearn.api.runner import Runner
from metalearn.registry import Store, schema
from metalearn.web import run_view
from tests.web.conftest import TOKEN

HOSTILE = "<img src=x onerror=alert(1)>"
ESCAPED = "&lt;img src=x onerror=alert(1)&gt;"
ESC = "\x1b[31m"
CONFIG = {"objective": {"metric": "acc", "mode": "max"}, "model": {"lr": 0.001, "name": HOSTILE, "layers": [64, 64]},
          "trainer": {"max_steps": 4}, HOSTILE: None}


class Elements(HTMLParser):
    """Each element with an id: its tag, attributes and the text inside it."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, dict] = {}
        self.open: list[tuple[str, str | None]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        ident = dict(attrs).get("id")
        if ident:
            self.found[ident] = {"tag": tag, "attrs": dict(attrs), "text": ""}
        if tag not in ("input", "br", "meta", "link", "img", "line", "circle", "rect", "path", "polyline"):
            self.open.append((tag, ident))

    def handle_startendtag(self, tag: str, attrs: list) -> None:
        ident = dict(attrs).get("id")
        if ident:
            self.found[ident] = {"tag": tag, "attrs": dict(attrs), "text": ""}

    def handle_endtag(self, tag: str) -> None:
        while self.open:
            name, _ = self.open.pop()
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, ident in self.open:
            if ident:
                self.found[ident]["text"] += data


@pytest.fixture
def app(store: Store, runner: Runner, validator: OverrideValidator) -> Iterator[TestClient]:
    """The app on loopback (pages readable without signing in), its runner never started."""
    with TestClient(create_app(store, runner, validator, token=TOKEN)) as c:
        yield c


def sign_in(client: TestClient) -> None:
    response = client.post("/signin", data={"token": TOKEN, "next": "/"}, follow_redirects=False)
    assert response.status_code == 303, response.text


def completed(store: Store, runner: Runner, **fields) -> int:
    """A finished training attempt with curves, meta-test results and a log file."""
    out = runner.check.log_root / "exp" / "runs" / "a1"
    out.mkdir(parents=True)
    (out / "exp.log").write_text("".join(f"line {i}\n" for i in range(300)) + "\x1b[32mgreen\x1b[0m done\n")
    attempt = store.create_attempt(
        name=HOSTILE, experiment="reptile_exp", algorithm="reptile", status=schema.COMPLETED, config=CONFIG,
        overrides=[HOSTILE, ESC, "trainer.max_steps=4"], command=["metalearn train", "experiment=reptile_exp",
                                                                 HOSTILE],
        host="box", git_commit="abc123", ckpt_path="/logs/exp/step4.ckpt", log_name="reptile_exp/attempt-1",
        output_dir=str(out), study="s/1", trial=3, **fields)
    store.set_status(attempt, schema.COMPLETED)
    rows = [{"name": n, "step": s, "value": v, "time": 1.0}
            for s in range(5) for n, v in (("train/query_acc", 0.5 + s / 10), ("train/query_acc_pre", 0.4),
                                           ("lr-Adam", 0.001))]
    rows += [{"name": "val/acc", "step": 4, "value": 0.8, "time": 1.0},
             {"name": "val/acc_pre", "step": 4, "value": 0.6, "time": 1.0},
             {"name": "val/acc_ci95", "step": 4, "value": 0.05, "time": 1.0},
             {"name": f"test/{HOSTILE}/acc", "step": 4, "value": 0.7, "time": 1.0}]
    store.add_metrics(attempt, rows)
    store.put_test_results(attempt, [
        {"group": "automotive", "metric": "acc", "value": 0.8033333, "ci95": 0.0492658, "episodes": 30, "shots": 5,
         "queries": 5},
        {"group": HOSTILE, "metric": "acc", "value": 0.5, "ci95": 0.0, "episodes": 6, "shots": 5, "queries": 5}])
    return attempt


def test_the_page_shows_the_attempt_escaped(app: TestClient, store: Store, runner: Runner) -> None:
    attempt = completed(store, runner)
    response = app.get(f"/attempts/{attempt}")
    assert response.status_code == 200, response.text
    html = response.text
    assert "<img" not in html and ESC not in html and "\x1b" not in html
    assert html.count(ESCAPED) >= 6  # name, overrides, command, config, test group, chart label...
    assert "\\x1b[31m" in html  # the control character written out
    found = Elements(html).found
    assert found["run-status"]["text"] == "completed"
    assert found["command"]["text"] == f"metalearn train experiment=reptile_exp {HOSTILE}"
    assert found["checkpoint"]["text"] == "/logs/exp/step4.ckpt"
    assert found["tensorboard-name"]["text"] == "reptile_exp/attempt-1"
    assert found["study-link"]["attrs"]["href"] == "/studies/s%2F1"
    assert "trainer.max_steps=4" in found["overrides"]["text"]
    tree = found["config-tree"]["text"]
    assert "max_steps" in tree and "0.001" in tree and "[64, 64]" in tree and "null" in tree
    assert "<details" in html and "<summary>model</summary>" in html
    assert found["meta-test-link"]["attrs"]["href"] == f"/attempts/{attempt}/test"
    assert "cancel-form" not in found and "cancel" not in found


def test_curves_pair_a_metric_with_its_before_adapting_twin(app: TestClient, store: Store, runner: Runner) -> None:
    attempt = completed(store, runner)
    html = app.get(f"/attempts/{attempt}").text
    curves = html[html.index('id="curves"'):html.index('id="meta-test"')]
    metrics = re.findall(r'<svg [^>]*class="chart[^"]*"[^>]*data-metric="([^"]*)"', curves)
    assert metrics == ["train/query_acc", "val/acc", "lr-Adam", f"test/{ESCAPED}/acc"]
    assert curves.count('stroke-dasharray="6 4" stroke-linejoin') == 1  # train/query_acc_pre; val/acc_pre is a dot
    assert curves.count('class="point"') == 3  # val/acc, val/acc_pre, test/.../acc: one step each
    assert "_ci95" not in curves
    folded = curves[curves.index('id="test-curves"'):]  # meta-test charts (one step each) folded away
    assert re.findall(r'data-metric="([^"]*)"', folded) == [f"test/{ESCAPED}/acc"]


def test_the_meta_test_table_and_chart(app: TestClient, store: Store, runner: Runner) -> None:
    attempt = completed(store, runner)
    html = app.get(f"/attempts/{attempt}").text
    found = Elements(html).found
    assert found["test-chart"]["tag"] == "svg"
    table = html[html.index('id="test-results"'):]
    table = table[:table.index("</table>")]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", table)]
    assert cells == [ESCAPED, "acc (%)", "50.00", "± 0.00", "6", "5", "5",  # groups by name: "<" < "a"
                     "automotive", "acc (%)", "80.33", "± 4.93", "30", "5", "5"]
    chart = html[html.index('id="test-chart"'):]
    chart = chart[:chart.index("</svg>")]
    assert chart.count('class="bar"') == 2 and chart.count('class="whisker"') == 2


def test_meta_test_steps_are_one_family_of_bars() -> None:
    results = [{"group": g, "metric": m, "value": v, "ci95": 0.1, "episodes": 10, "shots": 5, "queries": 10}
               for g in ("a", "b") for m, v in (("mse@10", 0.2), ("mse@0", 1.0), ("mse@1", 0.5), ("loss", 3.0))]
    view = run_view.meta_test_view(results, "mse")
    assert len(view.charts) == 2
    first, second = (str(c) for c in view.charts)
    assert 'id="test-chart"' in first and 'id="test-chart-2"' in second
    legend = re.findall(r'<g class="legend-item"[^>]*><title>([^<]*)</title>', first)
    assert legend == ["mse@0", "mse@1", "mse@10"]  # by steps, not by text
    assert first.count('class="bar"') == 6 and second.count('class="bar"') == 2
    assert [r["shown"] for r in view.rows][:2] == ["0.2", "1"]  # raw, not percent


def test_the_log_tail_is_bounded_and_clean(app: TestClient, store: Store, runner: Runner) -> None:
    attempt = completed(store, runner)
    text = Elements(app.get(f"/attempts/{attempt}").text).found["log-tail"]["text"]
    lines = text.split("\n")
    assert len(lines) == run_view.LOG_LINES and lines[-1] == "green done" and lines[0] == "line 101"


def test_the_server_log_comes_first_and_links_are_not_followed(store: Store, runner: Runner, tmp_path: Path) -> None:
    attempt = completed(store, runner)
    row = store.get_attempt(attempt)
    runner.log_dir.mkdir(parents=True)
    (runner.log_dir / f"2026-01-01_00-00-00_attempt-{attempt}.log").write_text("from the server\n")
    (runner.log_dir / f"2026-01-01_00-00-00_attempt-{attempt}0.log").write_text("another attempt\n")
    assert run_view.log_tail(row, runner).text == "from the server"
    secret = tmp_path / "secret.txt"
    secret.write_text("secret\n")
    out = Path(row["output_dir"])
    (out / "exp.log").unlink()
    (out / "evil.log").symlink_to(secret)
    for f in runner.log_dir.iterdir():
        f.unlink()
    assert run_view.log_tail(row, runner).text == ""


def test_an_output_folder_outside_the_log_roots_is_not_read(store: Store, runner: Runner, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "x.log").write_text("private\n")
    attempt = store.create_attempt(status=schema.FAILED, output_dir=str(elsewhere))
    assert run_view.log_tail(store.get_attempt(attempt), runner).path is None
    attempt = store.create_attempt(status=schema.FAILED, output_dir=str(runner.check.log_root / ".." / "elsewhere"))
    assert run_view.log_tail(store.get_attempt(attempt), runner).path is None


def test_a_running_attempt_is_live_and_cancellable_when_signed_in(app: TestClient, store: Store) -> None:
    attempt = store.create_attempt(name="x", experiment="reptile_exp", status=schema.RUNNING, config=CONFIG)
    found = Elements(app.get(f"/attempts/{attempt}").text).found
    assert "cancel-form" not in found and "meta-test-link" not in found  # not signed in
    for ident in ("curves", "log-tail", "run-state", "meta-test"):
        assert found[ident]["attrs"]["data-live"] == "active"
        assert found[ident]["attrs"]["data-live-src"].startswith(f"/attempts/{attempt}/parts/")
    sign_in(app)
    found = Elements(app.get(f"/attempts/{attempt}").text).found
    form = found["cancel-form"]["attrs"]
    assert (form["method"], form["action"]) == ("post", f"/attempts/{attempt}/cancel")
    assert found["cancel"]["tag"] == "button"
    for part in ("status", "curves", "test", "log"):
        response = app.get(f"/attempts/{attempt}/parts/{part}")
        assert response.status_code == 200 and response.headers["X-Live"] == "active", part
    assert 'id="cancel-form"' in app.get(f"/attempts/{attempt}/parts/status").text
    store.set_status(attempt, schema.FAILED, error=f"boom {HOSTILE}")
    status = app.get(f"/attempts/{attempt}/parts/status")
    assert status.headers["X-Live"] == "done" and ">failed</span>" in status.text
    assert "cancel-form" not in status.text and ESCAPED in status.text and "<img" not in status.text
    assert app.get(f"/attempts/{attempt}/parts/curves").headers["X-Live"] == "done"


def test_a_queued_attempt_waits(app: TestClient, store: Store) -> None:
    attempt = store.create_attempt(status=schema.QUEUED, experiment="reptile_exp", command=["metalearn train"])
    html = app.get(f"/attempts/{attempt}").text
    found = Elements(html).found
    assert found["run-status"]["text"] == "queued" and "waiting in the queue" in found["status-history"]["text"]
    assert found["curves"]["attrs"]["data-live"] == "active" and "No metrics logged yet." in found["curves"]["text"]
    assert found["log-tail"]["text"] == "(no log file yet)" and "No config recorded yet." in html
    assert " style=" not in html and "<script>" not in html


def test_children_are_listed_with_scores(app: TestClient, store: Store, runner: Runner) -> None:
    parent = completed(store, runner)
    child = store.create_attempt(kind="test", parent_id=parent, status=schema.COMPLETED, experiment="reptile_exp")
    store.add_metrics(child, [{"name": "test/acc", "step": 0, "value": 0.75, "time": 1.0},
                              {"name": "test/acc_ci95", "step": 0, "value": 0.02, "time": 1.0}])
    html = app.get(f"/attempts/{parent}").text
    row = html[html.index(f'data-id="{child}"'):]
    row = row[:row.index("</tr>")]
    assert f'href="/attempts/{child}"' in row and "75.00 ± 2.00 %" in row and "completed" in row
    child_page = Elements(app.get(f"/attempts/{child}").text).found
    assert child_page["parent-link"]["attrs"]["href"] == f"/attempts/{parent}"


def test_an_unknown_attempt_is_404(app: TestClient) -> None:
    response = app.get("/attempts/999")
    assert response.status_code == 404 and "No attempt 999" in response.text
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
    part = app.get("/attempts/999/parts/curves")
    assert part.status_code == 404 and part.headers["X-Live"] == "done"


def test_reading_off_loopback_needs_a_session(store: Store, runner: Runner, validator: OverrideValidator) -> None:
    attempt = store.create_attempt(name="x", status=schema.RUNNING)
    with TestClient(create_app(store, runner, validator, token=TOKEN, token_for_reads=True)) as client:
        for path in (f"/attempts/{attempt}", f"/attempts/{attempt}/parts/log"):
            response = client.get(path, follow_redirects=False)
            assert response.status_code == 303 and response.headers["location"].startswith("/signin"), path
        sign_in(client)
        assert client.get(f"/attempts/{attempt}").status_code == 200


def test_curve_groups_and_scores() -> None:
    names = ["val/acc_ci95", "val/acc", "val/acc_pre", "x_pre", "epoch", "test/g/acc", "train/loss"]
    assert run_view.curve_groups(names) == [("train/loss", None), ("val/acc", "val/acc_pre"), ("epoch", None),
                                            ("x_pre", None), ("test/g/acc", None)]
    assert run_view.score(0.5, "acc") == "50.00" and run_view.score(0.5, "acc@1") == "50.00"
    assert run_view.score(0.123456, "mse") == "0.1235" and run_view.score(None, "acc") == ""
    assert run_view.is_acc("val/acc_pre") and run_view.is_acc("acc_ci95") and not run_view.is_acc("acc_rank")


def test_the_job_log_comes_before_the_printed_config(store: Store, runner: Runner) -> None:
    out = runner.check.log_root / "exp" / "runs" / "b"
    out.mkdir(parents=True)
    (out / "exp.log").write_text("training\r  step 1\rstep 2   \n")
    (out / "config_tree.log").write_text("config\n")  # written last, still not the log
    attempt = store.create_attempt(status=schema.RUNNING, output_dir=str(out))
    tail = run_view.log_tail(store.get_attempt(attempt), runner)
    assert tail.path == out / "exp.log" and tail.text == "step 2"


def test_long_curves_are_thinned_in_sql_keeping_the_ends(store: Store) -> None:
    attempt = store.create_attempt(status=schema.RUNNING)
    store.add_metrics(attempt, [{"name": "a", "step": s, "value": s / 2, "time": 1.0} for s in range(1501)]
                      + [{"name": "b", "step": s, "value": None, "time": 1.0} for s in range(3)])
    series = run_view.thinned_metrics(store, attempt)
    steps = [step for step, _ in series["a"]]
    assert steps[:3] == [0, 3, 6] and steps[-2:] == [1497, 1500] and len(steps) == 501  # stride ceil(1501/600)
    assert series["a"][-1] == (1500, 750.0) and series["b"] == [(0, None), (1, None), (2, None)]


def test_the_facts_card_is_live_until_the_attempt_ends(app: TestClient, store: Store) -> None:
    """The checkpoint and TensorBoard name arrive while a run goes on: the card is a live part."""
    attempt = store.create_attempt(name="x", experiment="reptile_exp", status=schema.RUNNING)
    page = app.get(f"/attempts/{attempt}")
    assert f'data-live-src="/attempts/{attempt}/parts/facts"' in page.text
    part = app.get(f"/attempts/{attempt}/parts/facts")
    assert part.status_code == 200 and part.headers["X-Live"] == "active"
    assert 'id="checkpoint"' in part.text
    store.update_attempt(attempt, status=schema.COMPLETED, ckpt_path="/logs/x/step000002.ckpt")
    part = app.get(f"/attempts/{attempt}/parts/facts")
    assert part.headers["X-Live"] == "done" and "/logs/x/step000002.ckpt" in part.text
