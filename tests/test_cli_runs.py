"""`metalearn runs ...` as a terminal shows it and as a pipe receives it: nothing cut to 80
columns, no control character from a stored value reaching the terminal, debug runs kept out
of rankings and default listings."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from metalearn.cli import main
from metalearn.registry import Store, records, schema

LONG_NAME = "sweep-" + "-".join(f"part{i:02d}" for i in range(30))  # 185 characters
LONG_PATH = "/data/" + "/".join(f"folder{i:02d}" for i in range(25)) + "/out"
HOSTILE = "evil\x1b[2J\x1b]0;owned\x07\x9b31m[red]x[/red]\rend"


@pytest.fixture
def long_names(sqlite_url: str) -> str:
    """One completed attempt with a long name and a long output folder."""
    store = Store(sqlite_url)
    attempt = store.create_attempt(name=LONG_NAME, experiment="reptile_amazon", algorithm="reptile",
                                   output_dir=LONG_PATH, config={"seed": 1})
    store.add_metrics(attempt, [{"name": "test/acc", "step": 1, "value": 0.5, "time": time.time()}])
    store.set_status(attempt, schema.COMPLETED)
    return sqlite_url


def _lines_holding(out: str, text: str) -> list[str]:
    return [line for line in out.splitlines() if text in line]


@pytest.mark.parametrize("argv", [["runs", "list"], ["runs", "show", "1"], ["runs", "best"]])
def test_a_pipe_gets_names_and_paths_whole(long_names: str, argv: list[str],
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # captured output is no terminal
    assert main(["--url", long_names, *argv]) == 0
    out = capsys.readouterr().out
    assert _lines_holding(out, LONG_NAME), out
    if argv[1] == "show":
        assert _lines_holding(out, LONG_PATH), out


def test_a_real_pipe_gets_the_whole_name(long_names: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "FORCE_COLOR")}
    done = subprocess.run([sys.executable, "-m", "metalearn.cli", "--url", long_names, "runs", "list"],
                          capture_output=True, text=True, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _lines_holding(done.stdout, LONG_NAME), done.stdout


def test_an_error_on_a_pipe_is_not_wrapped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    missing = tmp_path / ("x" * 150) / "missing.json"
    assert main(["--url", f"sqlite:///{tmp_path / 'r.db'}", "runs", "import", str(missing)]) == 1
    assert _lines_holding(capsys.readouterr().err, f"{missing}: no such file or folder")


@pytest.fixture
def hostile(sqlite_url: str, tmp_path: Path) -> str:
    """A completed attempt whose user-given fields hold terminal escapes and rich markup."""
    store = Store(sqlite_url)
    attempt = store.create_attempt(
        name=HOSTILE, experiment="reptile_amazon", algorithm=HOSTILE, host="box", pid=1,
        config={"note": HOSTILE, "objective": {"metric": "acc", "mode": "max"}},
        overrides=[f"+note={HOSTILE}"], output_dir=f"/logs/{HOSTILE}")
    store.add_metrics(attempt, [{"name": f"test/{HOSTILE}", "step": 1, "value": 0.5, "time": 1.0},
                                {"name": "test/acc", "step": 1, "value": 0.5, "time": 1.0}])
    store.put_test_results(attempt, [{"group": HOSTILE, "metric": "acc", "value": 0.5, "ci95": 0.1,
                                      "episodes": 2, "shots": 1, "queries": 1}])
    store.set_status(attempt, schema.FAILED, error=f"ValueError: {HOSTILE}")
    other = store.create_attempt(name="plain", experiment="reptile_amazon", config={"note": "n"})
    store.set_status(other, schema.COMPLETED)
    return sqlite_url


SHOWN = r"evil\x1b[2J\x1b]0;owned\x07\x9b31m[red]x[/red]\x0dend"


@pytest.mark.parametrize("argv", [
    ["runs", "list"], ["runs", "show", "1"], ["runs", "compare", "1", "2"],
    ["runs", "best", "--metric", "test/acc"], ["runs", "best", "--metric", f"test/{HOSTILE}"],
])
@pytest.mark.parametrize("colour", [False, True])
def test_control_characters_are_shown_escaped_never_sent(
        hostile: str, argv: list[str], colour: bool, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    if colour:  # as on a terminal: rich's own styles are the only escapes written
        monkeypatch.setenv("FORCE_COLOR", "1")
        monkeypatch.setenv("COLUMNS", "1000")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert main(["--url", hostile, *argv]) == 0
    out = capsys.readouterr().out
    for raw in ("\x1b[2J", "\x1b]", "\x07", "\x9b", "\r"):
        assert raw not in out, (raw, out)
    assert SHOWN in out, out  # visibly escaped, the markup as written


def test_export_and_import_print_paths_escaped(hostile: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture) -> None:
    out_dir = tmp_path / "rec\x1b[2Jords"
    assert main(["--url", hostile, "runs", "export", "1", "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and r"rec\x1b[2Jords" in printed, printed
    target = f"sqlite:///{tmp_path / 'b.db'}"
    assert main(["--url", target, "runs", "import", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert "\x1b" not in printed and r"rec\x1b[2Jords" in printed, printed
    (json_path,) = out_dir.rglob("*.json")
    record = json.loads(json_path.read_text())
    record["status"] = "\x1b[2Jdone"
    json_path.write_text(json.dumps(record))
    assert main(["--url", target, "runs", "import", str(out_dir)]) == 1
    err = capsys.readouterr().err
    assert "\x1b" not in err and r"rec\x1b[2Jords" in err, err


def test_records_keep_names_as_given(hostile: str, tmp_path: Path) -> None:
    """Escaping is for the terminal only: the record holds the name as stored."""
    (path, _), = records.export(Store(hostile), [1], tmp_path)
    assert json.loads(path.read_text())["name"] == HOSTILE


@pytest.fixture
def with_debug(sqlite_url: str) -> str:
    """reptile_amazon: a real run (0.48), a debug=fast smoke run scoring higher (0.511), and
    runs whose overrides switch debug off."""
    store = Store(sqlite_url)
    for name, overrides, acc in (
            ("real", ["experiment=reptile_amazon", "seed=1"], 0.48),
            ("smoke", ["experiment=reptile_amazon", "debug=fast"], 0.511),
            ("nulled", ["experiment=reptile_amazon", "debug=null"], 0.40),
            ("removed", ["experiment=reptile_amazon", "~debug"], 0.30),
            ("limit", ["+debug=limit", "experiment=reptile_amazon"], 0.90)):
        attempt = store.create_attempt(name=name, experiment="reptile_amazon", algorithm="reptile",
                                       overrides=overrides, config={"seed": 1})
        store.add_metrics(attempt, [{"name": "test/acc", "step": 4, "value": acc, "time": 1.0}])
        store.set_status(attempt, schema.COMPLETED)
    return sqlite_url


def _names(out: str) -> list[str]:
    return [r["name"] for r in json.loads(out)]


def test_best_leaves_debug_runs_out_unless_asked(with_debug: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", with_debug, "runs", "best", "--experiment", "reptile_amazon", "--json"]) == 0
    assert _names(capsys.readouterr().out) == ["real", "nulled", "removed"]
    assert main(["--url", with_debug, "runs", "best", "--experiment", "reptile_amazon"]) == 0
    out = capsys.readouterr().out
    assert "real" in out and "smoke" not in out and "2 debug runs left out (--debug" in out, out
    assert main(["--url", with_debug, "runs", "best", "--debug", "--json"]) == 0
    assert _names(capsys.readouterr().out) == ["limit", "smoke", "real", "nulled", "removed"]


def test_list_leaves_debug_runs_out_unless_asked(with_debug: str, capsys: pytest.CaptureFixture) -> None:
    assert main(["--url", with_debug, "runs", "list", "--json"]) == 0
    assert _names(capsys.readouterr().out) == ["removed", "nulled", "real"]
    assert main(["--url", with_debug, "runs", "list", "--limit", "2", "--json"]) == 0
    assert _names(capsys.readouterr().out) == ["removed", "nulled"]
    assert main(["--url", with_debug, "runs", "list"]) == 0
    out = capsys.readouterr().out
    assert "smoke" not in out and "2 debug runs left out (--debug" in out, out
    assert main(["--url", with_debug, "runs", "list", "--debug", "--json"]) == 0
    assert _names(capsys.readouterr().out) == ["limit", "removed", "nulled", "smoke", "real"]
    assert main(["--url", with_debug, "runs", "list", "--debug"]) == 0
    assert "left out" not in capsys.readouterr().out


def test_the_debug_flag_is_documented(capsys: pytest.CaptureFixture) -> None:
    for command in ("list", "best"):
        with pytest.raises(SystemExit):
            main(["runs", command, "--help"])
        assert "debug=fast" in " ".join(capsys.readouterr().out.split())


def test_a_debug_run_is_told_by_its_overrides() -> None:
    from metalearn.registry.store import is_debug

    assert is_debug(["debug=fast"]) and is_debug(["+debug=limit"]) and is_debug(["++debug=overfit"])
    assert not is_debug(None) and not is_debug([]) and not is_debug(["debug=null"])
    assert not is_debug(["~debug"]) and not is_debug(["~debug=fast"]) and not is_debug(["data.debug=x"])
    assert not is_debug(["tags=[debug]", "debug_x=1"])
