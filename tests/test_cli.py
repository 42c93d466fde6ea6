"""The metalearn command on a small registry: list, show, compare, best, export."""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from metalearn.cli import main
from metalearn.registry import NotFound, RegistryError, Store, schema


@pytest.fixture
def url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A registry with two completed attempts and one failed one."""
    monkeypatch.setenv("COLUMNS", "200")
    store = Store(sqlite_url)
    for acc, algo, shots in ((0.61, "reptile", 5), (0.72, "maml", 2)):
        attempt = store.create_attempt(
            name="train", experiment="reptile_amazon", algorithm=algo,
            config={"algorithm": {"name": algo}, "data": {"shots": shots}, "seed": 42},
            overrides=["experiment=reptile_amazon", f"data.shots={shots}"],
        )
        store.add_metrics(attempt, [{"name": "train/query_loss", "step": s, "value": 1 / (s + 1), "time": time.time()}
                                    for s in range(10)])
        store.add_metrics(attempt, [{"name": "test/acc", "step": 10, "value": acc, "time": time.time()}])
        store.put_test_results(attempt, [{"group": "automotive", "metric": "acc", "value": acc, "ci95": 0.03,
                                          "episodes": 30, "shots": shots, "queries": 5}])
        store.set_status(attempt, schema.COMPLETED)
    failed = store.create_attempt(name="train", experiment="fomaml_amazon", algorithm="fomaml")
    store.set_status(failed, schema.FAILED, error="Traceback ...\nValueError: bad data")
    return sqlite_url


def test_list_filters_and_json(url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", url, "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert "reptile_amazon" in out and "fomaml_amazon" in out and "failed" in out
    assert main(["--url", url, "runs", "list", "--status", "completed", "--algorithm", "maml", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["status"]) for r in rows] == [(2, "completed")]
    assert main(["--url", url, "runs", "list", "--experiment", "fomaml_amazon", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [3]


def test_show(url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", url, "runs", "show", "1"]) == 0
    out = capsys.readouterr().out
    assert "train/query_loss" in out and "automotive" in out and "data.shots=5" in out
    assert main(["--url", url, "runs", "show", "3", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "failed" and "ValueError: bad data" in shown["error"]


def test_compare_shows_differences_and_test_metrics(url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", url, "runs", "compare", "1", "2"]) == 0
    out = capsys.readouterr().out
    assert "data.shots" in out and "algorithm.name" in out and "seed" not in out
    assert "0.6100" in out and "0.7200" in out
    assert main(["--url", url, "runs", "compare", "1", "2", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["config_diff"] == {"algorithm.name": ["reptile", "maml"], "data.shots": [5, 2]}
    assert data["test_metrics"]["test/acc"] == [0.61, 0.72]
    assert data["test_results"]["automotive"]["acc"][1]["shots"] == 2


def test_best(url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", url, "runs", "best", "--metric", "test/acc", "--json"]) == 0
    out = capsys.readouterr().out
    assert [(r["id"], r["test/acc"]) for r in json.loads(out)] == [(2, 0.72), (1, 0.61)], out
    assert main(["--url", url, "runs", "best", "--metric", "train/query_loss", "--mode", "min", "--top", "1"]) == 0
    assert "best by train/query_loss" in capsys.readouterr().out
    assert main(["--url", url, "runs", "best", "--json"]) == 0  # the objective's: test/acc, max
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [2, 1]


def test_best_follows_the_objective_metric_and_direction(url: str, capsys: pytest.CaptureFixture) -> None:
    store = Store(url)
    for mse in (0.9, 0.2, 0.5):
        attempt = store.create_attempt(name="train", experiment="maml_sinusoid", algorithm="maml",
                                       config={"objective": {"metric": "mse", "mode": "min"}})
        store.add_metrics(attempt, [{"name": "test/mse", "step": 3, "value": mse, "time": 0.0}])
        store.set_status(attempt, schema.COMPLETED)
    assert main(["--url", url, "runs", "best", "--experiment", "maml_sinusoid", "--json"]) == 0
    assert [r["test/mse"] for r in json.loads(capsys.readouterr().out)] == [0.2, 0.5, 0.9]
    assert main(["--url", url, "runs", "best", "--metric", "val/mse", "--experiment", "maml_sinusoid"]) == 0
    assert "best by val/mse (min)" in capsys.readouterr().out
    assert main(["--url", url, "runs", "best"]) == 1  # acc and mse attempts: no one ranking
    assert "different objectives: acc (max), mse (min)" in capsys.readouterr().err


def test_dump(url: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    target = tmp_path / "attempt.json"
    assert main(["--url", url, "runs", "dump", "1", "-o", str(target)]) == 0
    assert "wrote" in capsys.readouterr().out
    data = json.loads(target.read_text())
    assert data["attempt"]["id"] == 1 and len(data["metrics"]["train/query_loss"]) == 10
    assert data["test_results"][0]["group"] == "automotive"
    assert main(["--url", url, "runs", "dump", "2"]) == 0
    assert json.loads(capsys.readouterr().out)["attempt"]["algorithm"] == "maml"


def test_missing_attempt_is_a_message_not_a_traceback(url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", url, "runs", "show", "99"]) == 1
    assert "no attempt with id 99" in capsys.readouterr().err


def test_a_newer_schema_is_a_clear_error(url: str, capsys: pytest.CaptureFixture) -> None:
    store = Store(url)
    with store.engine.begin() as conn:
        conn.execute(schema.meta.update().values(value="999"))
    assert main(["--url", url, "runs", "list"]) == 1
    assert "newer than this metalearn" in capsys.readouterr().err


def test_retract_keeps_the_record_but_not_as_completed(url: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", url, "runs", "retract", "1", "--reason", "episodes replayed (bug #1)"]) == 0
    assert "attempt 1 retracted" in capsys.readouterr().out
    assert main(["--url", url, "runs", "list", "--status", "completed", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [2]
    assert main(["--url", url, "runs", "show", "1", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["status"] == "retracted" and shown["error"] == "retracted: episodes replayed (bug #1)"
    assert shown["test_results"][0]["value"] == 0.61  # nothing recorded is lost
    assert main(["--url", url, "runs", "retract", "3", "--reason", "x"]) == 0  # a failed one too
    assert "ValueError: bad data" in Store(url).get_attempt(3)["error"]
    running = Store(url).create_attempt(name="train", experiment="e")
    assert main(["--url", url, "runs", "retract", str(running), "--reason", "x"]) == 1
    assert "only a completed, failed or interrupted" in capsys.readouterr().err
    assert main(["--url", url, "runs", "retract", "2", "--reason", " "]) == 1


def test_reading_never_creates_a_registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("METALEARN_REGISTRY_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "400")  # the path on one line
    monkeypatch.chdir(tmp_path)  # not a clone: the current folder is the project root
    assert main(["runs", "list"]) == 1
    assert f"no registry at {tmp_path.resolve() / 'logs' / 'registry.db'}" in capsys.readouterr().err
    (tmp_path / "run.py").write_text("")
    (tmp_path / "conf").mkdir()  # a clone, nothing recorded
    (tmp_path / "experiments").mkdir()
    monkeypatch.chdir(tmp_path / "experiments")  # read from a folder inside it
    assert main(["runs", "list"]) == 1
    assert f"no registry at {tmp_path.resolve() / 'logs'}" in capsys.readouterr().err
    assert not (tmp_path / "logs").exists() and not (tmp_path / "experiments" / "logs").exists()


@pytest.mark.parametrize("flag", ["--max-parallel", "--max-queued"])
@pytest.mark.parametrize("value", ["0", "-3", "two"])
def test_serve_limits_are_checked(flag: str, value: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", flag, value])
    assert exit_.value.code == 2 and flag in capsys.readouterr().err


# Text that rich would read as markup: a plain list, a style tag and a link.
MARKUP = ("[brackets]", "[bold]x[/bold]", "[link=http://x]y[/link]", ":thumbs_up:")


@pytest.fixture
def marked_up(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """One failed attempt whose every user-given field holds rich markup."""
    monkeypatch.setenv("COLUMNS", "400")
    store = Store(sqlite_url)
    text = " ".join(MARKUP)
    attempt = store.create_attempt(
        name=f"sweep {text}", experiment="exp[1]", algorithm="[red]maml[/red]",
        config={"data": {"heldout": "[musical_instruments,tools_hardware]"}, "note": text},
        overrides=["data.heldout=[musical_instruments,tools_hardware]", f"+note={text}"],
        output_dir="/logs/[bold]x[/bold]",
    )
    store.add_metrics(attempt, [{"name": "test/[acc]", "step": 1, "value": 0.5, "time": time.time()}])
    store.put_test_results(attempt, [{"group": "[bold]dom[/bold]", "metric": "[acc]", "value": 0.5, "ci95": 0.1,
                                      "episodes": 2, "shots": 1, "queries": 1}])
    store.set_status(attempt, schema.FAILED, error=f"ValueError: {text}")
    other = store.create_attempt(name="plain", config={"data": {"heldout": "[a]"}, "note": "n"})
    store.set_status(other, schema.COMPLETED)
    return sqlite_url


def _shown(out: str) -> str:
    """Console output with table borders and wrapping whitespace squeezed out."""
    return " ".join(out.replace("│", " ").replace("┃", " ").split())


@pytest.mark.parametrize("argv, expected", [
    (["runs", "list"], ["sweep", *MARKUP, "exp[1]", "[red]maml[/red]"]),
    (["runs", "show", "1"], ["sweep", *MARKUP, "exp[1]", "[red]maml[/red]",
                             "data.heldout=[musical_instruments,tools_hardware]",
                             "/logs/[bold]x[/bold]", "test/[acc]", "[bold]dom[/bold]",
                             f"ValueError: {' '.join(MARKUP)}"]),
    (["runs", "compare", "1", "2"], ["sweep", *MARKUP, "data.heldout=[musical_instruments,tools_hardware]",
                                     "[musical_instruments,tools_hardware]", "test/[acc]",
                                     "[bold]dom[/bold] ([acc] ± ci95)"]),
    (["runs", "best", "--metric", "test/[acc]"], ["best by test/[acc] (max)", "sweep", *MARKUP,
                                                  "exp[1]", "[red]maml[/red]"]),
])
def test_every_view_prints_registry_text_literally(marked_up: str, capsys: pytest.CaptureFixture,
                                                   argv: list[str], expected: list[str]) -> None:
    assert main(["--url", marked_up, *argv]) == 0
    out = _shown(capsys.readouterr().out)
    for text in expected:
        assert text in out, (text, out)


def test_messages_print_user_text_literally(marked_up: str, tmp_path: Path,
                                            capsys: pytest.CaptureFixture,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "[bold]attempt.json"
    assert main(["--url", marked_up, "runs", "dump", "1", "-o", str(target)]) == 0
    assert f"wrote {target}" in _shown(capsys.readouterr().out)
    assert main(["--url", marked_up, "runs", "retract", "1", "--reason", "[bold]bug[/bold]"]) == 0
    assert "attempt 1 retracted" in capsys.readouterr().out

    def refuse(*args: object, **kwargs: object) -> None:
        raise RegistryError("cannot read [bold]x[/bold] [link=http://x]y[/link]")

    monkeypatch.setattr(Store, "list_attempts", refuse)
    assert main(["--url", marked_up, "runs", "list"]) == 1
    assert "registry error: cannot read [bold]x[/bold] [link=http://x]y[/link]" in _shown(capsys.readouterr().err)
    monkeypatch.setattr(Store, "get_attempt", lambda *a, **k: (_ for _ in ()).throw(NotFound("no [b]7[/b]")))
    assert main(["--url", marked_up, "runs", "show", "7"]) == 1
    assert "no [b]7[/b]" in capsys.readouterr().err


def test_status_keeps_its_colour(marked_up: str, capsys: pytest.CaptureFixture,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["--url", marked_up, "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"\x1b\[31mfailed *\x1b\[0m", out) and re.search(r"\x1b\[32mcompleted *\x1b\[0m", out)
    assert "[red]maml[/red]" in out  # the algorithm's own text, still not styled
