"""`metalearn data fetch`: from a mirror over HTTP on loopback, from the upstream layout, from a
local folder; checksums refuse a corrupted file; partial downloads resume. No network."""
from __future__ import annotations

import dataclasses
import hashlib
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from metalearn.cli import main
from metalearn.data import fetch
from metalearn.data.omniglot import require
from metalearn.data.review_datamodule import ReviewEpisodes
from metalearn.data.reviews import arsc_rows, read_reviews

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
OMNIGLOT = SHARED / "omniglot"
ARSC = SHARED / "amazon_reviews" / "arsc"
needs_omniglot = pytest.mark.skipif(not OMNIGLOT.is_dir(), reason=f"no Omniglot copy at {OMNIGLOT}")
needs_arsc = pytest.mark.skipif(not ARSC.is_dir(), reason=f"no ARSC copy at {ARSC}")


class _Quiet(SimpleHTTPRequestHandler):
    """A static file server that logs nothing (and, like Python's, ignores Range headers)."""

    def log_message(self, *args: object) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Connection", "close")
        super().end_headers()


class _Ranged(_Quiet):
    """Answers `Range: bytes=N-` with 206 and the rest of the file, as GitHub's server does;
    records the Range headers it was sent."""

    ranges: list[str] = []

    def do_GET(self) -> None:
        wanted = self.headers.get("Range")
        type(self).ranges.append(wanted or "")
        path = Path(self.translate_path(self.path))
        if not wanted or not path.is_file():
            return super().do_GET()
        start = int(wanted.removeprefix("bytes=").rstrip("-"))
        body = path.read_bytes()[start:]
        self.send_response(206)
        size = path.stat().st_size
        self.send_header("Content-Range", f"bytes {start}-{start + len(body) - 1}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve(folder: Path, handler: type[_Quiet] = _Quiet) -> Iterator[str]:
    """A static file server on a free loopback port for the block; yields its base URL."""
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a: handler(*a, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A mirror with the data folder's layout holding the Omniglot files."""
    folder = tmp_path / "mirror" / "omniglot"
    folder.mkdir(parents=True)  # writable, unlike the shared copy it is made from
    for path in OMNIGLOT.glob("*.zip"):
        shutil.copyfile(path, folder / path.name)
    return tmp_path / "mirror"


@needs_omniglot
def test_http_mirror_fetch_refuses_a_corrupted_file(mirror: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    bad = mirror / "omniglot" / "all_runs.zip"
    good = bad.read_bytes()
    bad.write_bytes(good[:1000] + bytes([good[1000] ^ 0xFF]) + good[1001:])  # one byte flipped
    dest = tmp_path / "data"
    with serve(mirror) as url:
        assert main(["data", "fetch", "omniglot", "--from", url, "--dest", str(dest)]) == 1
        err = capsys.readouterr().err
        assert "all_runs.zip" in err and "SHA-256" in err and "refused" in err
        assert sorted(p.name for p in (dest / "omniglot").iterdir()) == [
            "images_background_small1.zip", "images_background_small2.zip"]  # no part left over
        expected = fetch.SOURCES["omniglot"].files()
        for path in (dest / "omniglot").iterdir():
            assert sha256(path) == expected[path.name]

        bad.write_bytes(good)  # the mirror repaired: a re-run fetches only what is missing
        assert main(["data", "fetch", "omniglot", "--from", url, "--dest", str(dest)]) == 0
        assert "1 fetched, 2 already there" in capsys.readouterr().out
    assert sha256(dest / "omniglot" / "all_runs.zip") == expected["all_runs.zip"]


@needs_omniglot
def test_a_file_missing_from_the_mirror_is_an_error(mirror: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    (mirror / "omniglot" / "images_background_small2.zip").unlink()
    with serve(mirror) as url:
        code = main(["data", "fetch", "omniglot", "--from", url, "--dest", str(tmp_path / "d")])
    assert code == 1
    err = capsys.readouterr().err
    assert "images_background_small2.zip" in err and "404" in err


@needs_omniglot
def test_upstream_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without --from, each file comes from its own path in the upstream repository."""
    upstream = tmp_path / "upstream" / "python"
    (upstream / "one-shot-classification").mkdir(parents=True)
    for name in ("images_background_small1.zip", "images_background_small2.zip"):
        shutil.copyfile(OMNIGLOT / name, upstream / name)
    shutil.copyfile(OMNIGLOT / "all_runs.zip",
                    upstream / "one-shot-classification" / "all_runs.zip")
    with serve(tmp_path / "upstream") as url:
        source = dataclasses.replace(fetch.SOURCES["omniglot"], base_url=f"{url}/python")
        monkeypatch.setitem(fetch.SOURCES, "omniglot", source)
        report = fetch.fetch("omniglot", tmp_path / "data")
    assert (report.fetched, report.present, report.errors) == (3, 0, [])
    got = sorted(p.name for p in (tmp_path / "data" / "omniglot").iterdir())
    assert got == sorted(source.files())


@needs_omniglot
@pytest.mark.parametrize("ranged", [True, False], ids=["server-resumes", "server-restarts"])
def test_a_partial_download_is_resumed_or_restarted(mirror: Path, tmp_path: Path,
                                                    ranged: bool) -> None:
    source = fetch.SOURCES["omniglot"]
    name = "images_background_small1.zip"
    expected = source.files()[name]
    folder = tmp_path / "data" / "omniglot"
    folder.mkdir(parents=True)
    content = (mirror / "omniglot" / name).read_bytes()
    part = folder / f".{name}.part"
    # an interrupted earlier run; where the server restarts, a wrong head must not survive
    part.write_bytes(content[:5000] if ranged else b"x" * 5000)
    handler = type("Handler", (_Ranged,), {"ranges": []}) if ranged else _Quiet
    with serve(mirror, handler) as url:
        assert fetch.fetch_file(source, name, expected, tmp_path / "data", url) == "fetched"
    assert sha256(folder / name) == expected
    assert not part.exists()
    if ranged:
        assert handler.ranges == ["bytes=5000-"]  # only the rest was sent


@needs_arsc
def test_from_a_local_folder_copies_the_arsc_files(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    expected = fetch.SOURCES["amazon"].files()
    assert sorted(expected) == sorted(p.name for p in ARSC.iterdir())  # the list is the data
    dest = tmp_path / "data"
    assert main(["data", "fetch", "amazon", "--from", str(SHARED), "--dest", str(dest)]) == 0
    assert "221 fetched, 0 already there" in capsys.readouterr().out
    got = dest / "amazon_reviews" / "arsc"
    assert sorted(p.name for p in got.iterdir()) == sorted(expected)
    assert sha256(got / "books.t2.train") == expected["books.t2.train"]


def test_default_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("METALEARN_DATA", str(tmp_path / "elsewhere"))
    assert fetch.default_dest() == tmp_path / "elsewhere"
    monkeypatch.delenv("METALEARN_DATA")
    monkeypatch.delenv("PROJECT_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    assert fetch.default_dest() == tmp_path.resolve() / "data"  # no project here: ./data
    (tmp_path / "proj" / "conf").mkdir(parents=True)  # a clone
    (tmp_path / "proj" / "run.py").write_text("")
    (tmp_path / "proj" / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "proj" / "sub")
    assert fetch.default_dest() == (tmp_path / "proj").resolve() / "data"  # the clone's data/


def test_missing_data_errors_name_the_fetch_command(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    with pytest.raises(FileNotFoundError, match="metalearn data fetch amazon"):
        ReviewEpisodes(path=str(missing))
    with pytest.raises(FileNotFoundError, match="metalearn data fetch amazon"):
        read_reviews(missing)
    with pytest.raises(FileNotFoundError, match="metalearn data fetch amazon"):
        next(arsc_rows(tmp_path))
    with pytest.raises(FileNotFoundError, match="metalearn data fetch omniglot"):
        require(missing / "images_background_small1.zip")
