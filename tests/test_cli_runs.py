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
