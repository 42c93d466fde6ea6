"""`metalearn data fetch`: the public datasets, each file checked by SHA-256, into the data folder.

Sources (pinned to one commit each, so the checksums hold):
- amazon: the ARSC split files of Yu et al. (NAACL 2018), built from the Amazon reviews of
  Blitzer et al. (2007), as published in the DiverseFewShot_Amazon repository;
- omniglot: Lake et al.'s (2015) two small background sets and the 20 one-shot runs, from the
  brendenlake/omniglot repository.

A mirror (`--from DIR` or `--from URL`) has the data folder's own layout
(`amazon_reviews/arsc/<file>`, `omniglot/<file>`). Every file is written to a temporary name
beside its target and renamed only once its checksum matches, so an interrupted or refused
download never leaves a file the loaders would read; a re-run skips files already there with
the right checksum and resumes a partial download where the server allows it.
"""
from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress

from metalearn.project import find_project_root
from metalearn.resolvers import data_dir

log = logging.getLogger(__name__)

DATA_ENV = "METALEARN_DATA"
CHUNK = 1 << 16
TIMEOUT_S = 60


@dataclass(frozen=True)
class Source:
    """One dataset: where it lives upstream, where it goes, and the files it must hold."""

    name: str
    folder: str                 # below the data folder, as the config data/<name>.yaml reads it
    base_url: str               # upstream folder, at a fixed commit
    remote_paths: dict[str, str]  # file -> path below base_url, where it differs from the name
    description: str

    def files(self) -> dict[str, str]:
        """file name -> expected SHA-256 (hex), from the checksum list shipped with the package."""
        listing = resources.files("metalearn.data") / "checksums" / f"{self.name}.sha256"
        text = listing.read_text(encoding="utf-8")
        out = {}
        for line in text.splitlines():
            if line.strip():
                digest, name = line.split(maxsplit=1)
                out[name.lstrip("*")] = digest
        return out

    def url(self, file: str, mirror: str | None = None) -> str:
        """The file's address upstream, or in a mirror with the data folder's layout."""
        if mirror is not None:
            return f"{mirror.rstrip('/')}/{self.folder}/{file}"
        return f"{self.base_url.rstrip('/')}/{self.remote_paths.get(file, file)}"


SOURCES: dict[str, Source] = {
    "amazon": Source(
        name="amazon",
        folder="amazon_reviews/arsc",
        base_url="https://raw.githubusercontent.com/Gorov/DiverseFewShot_Amazon/"
                 "7417f3d7fec58a31150678213491cb4a2d290917/Amazon_few_shot",
        remote_paths={},
        description="ARSC split files (Yu et al. 2018) of the Amazon reviews (Blitzer et al. 2007)",
    ),
    "omniglot": Source(
        name="omniglot",
        folder="omniglot",
        base_url="https://raw.githubusercontent.com/brendenlake/omniglot/"
                 "057f034baf2ecb8530bc5710e5a23584d2a519cc/python",
        remote_paths={"all_runs.zip": "one-shot-classification/all_runs.zip"},
        description="Omniglot small background sets and one-shot runs (Lake et al. 2015)",
    ),
}


class FetchError(Exception):
    """A file that could not be fetched or did not match its checksum."""


def default_dest() -> Path:
    """`$METALEARN_DATA`, else `data/` in the clone around the current folder, else `./data`:
    where the configs (paths/default.yaml) read data from when no shared copy is beside it."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    return project_root() / "data"


def project_root() -> Path:
    """The folder the configs call root (paths.root_dir): `$PROJECT_ROOT`, else the clone
    around the current folder, else the current folder."""
    root = os.environ.get("PROJECT_ROOT")
    return Path(root) if root else find_project_root()


def sha256_of(path: Path) -> str:
    """The SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _partial(target: Path) -> Path:
    """The temporary name a file is written under until its checksum matches."""
    return target.with_name(f".{target.name}.part")


def _download(url: str, part: Path) -> None:
    """Write url to `part`, continuing an earlier partial download if the server takes a Range."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "metalearn-data-fetch"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)  # noqa: S310 (http/https)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # the part is already complete (or longer): start over
            part.unlink()
            return _download(url, part)
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise FetchError(f"{url}: {getattr(err, 'reason', err)}") from None
    with response:
        partial = response.status == 206
        if partial and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            if not offset:
                raise FetchError(f"{url}: a partial answer to a request for the whole file")
            part.unlink()  # not the range asked for: start over, whole
            response.close()
            return _download(url, part)
        with part.open("ab" if partial else "wb") as fh:
            try:
                shutil.copyfileobj(response, fh, CHUNK)
            except OSError as err:  # the connection dropped: keep the part to resume from
                raise FetchError(f"{url}: interrupted ({err})") from None


def _copy(src: Path, part: Path) -> None:
    """Copy a mirror's file to `part`."""
    if not src.is_file():
        raise FetchError(f"{src}: not in the mirror")
    shutil.copyfile(src, part)


def fetch_file(source: Source, file: str, expected: str, dest: Path,
               mirror: str | None = None) -> str:
    """Bring one file into dest/source.folder; 'present', 'fetched', or a FetchError.

    A file already there with the right checksum is kept; any other content is replaced, but
    only by a copy whose checksum matches.
    """
    target = dest / source.folder / file
    if target.is_file() and sha256_of(target) == expected:
        return "present"
    target.parent.mkdir(parents=True, exist_ok=True)
    part = _partial(target)
    if mirror is not None and "://" not in mirror:
        _copy(Path(mirror).expanduser() / source.folder / file, part)
        where = str(Path(mirror) / source.folder / file)
    else:
        where = source.url(file, mirror)
        _download(where, part)
    got = sha256_of(part)
    if got != expected:
        part.unlink()
        raise FetchError(f"{file} from {where}: SHA-256 {got} does not match the expected "
                         f"{expected}; refused (not written)")
    if target.exists():
        log.warning("replacing %s: its checksum did not match", target)
    os.replace(part, target)  # atomic: the loaders see the old file or the whole new one
    return "fetched"


@dataclass
class Report:
    """What one dataset's fetch did."""

    source: Source
    folder: Path
    fetched: int = 0
    present: int = 0
    errors: list[str] | None = None


def fetch(name: str, dest: Path | None = None, mirror: str | None = None, jobs: int = 4,
          on_file: Callable[[str], None] | None = None) -> Report:
    """Fetch every file of one dataset; the errors are collected, not raised, so one bad file
    does not stop the others."""
    source = SOURCES[name]
    dest = Path(dest) if dest is not None else default_dest()
    report = Report(source, dest / source.folder, errors=[])
    files = source.files()

    def one(item: tuple[str, str]) -> tuple[str, str | None]:
        file, digest = item
        try:
            return fetch_file(source, file, digest, dest, mirror), None
        except FetchError as err:
            return "error", str(err)
        finally:
            if on_file is not None:
                on_file(file)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        for outcome, error in pool.map(one, sorted(files.items())):
            if outcome == "fetched":
                report.fetched += 1
            elif outcome == "present":
                report.present += 1
            else:
                report.errors.append(error)
    return report


def add_parser(commands: argparse._SubParsersAction) -> None:
    """`metalearn data fetch ...` on the CLI's subcommands."""
    data = commands.add_parser("data", help="get the datasets")
    sub = data.add_subparsers(dest="data_command", required=True)
    cmd = sub.add_parser("fetch", help="download a dataset (checked by SHA-256) into the data "
                                       "folder, or copy it from a mirror")
    cmd.add_argument("dataset", choices=(*SOURCES, "all"))
    cmd.add_argument("--from", dest="mirror", metavar="DIR|URL",
                     help="a mirror with the data folder's layout (amazon_reviews/arsc/..., "
                          "omniglot/...) instead of the public sources")
    cmd.add_argument("--dest", metavar="DIR",
                     help=f"data folder to write (default: ${DATA_ENV}, else ./data)")
    cmd.add_argument("--jobs", type=int, default=4, help="files fetched at once (default 4)")
    cmd.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """The `fetch` subcommand: each dataset in turn, a summary line each; 1 if any file failed."""
    dest = Path(args.dest).expanduser() if args.dest else default_dest()
    out, err = Console(), Console(stderr=True)
    failed = False
    for name in (list(SOURCES) if args.dataset == "all" else [args.dataset]):
        source = SOURCES[name]
        with Progress(console=err, transient=True, disable=not err.is_terminal) as progress:
            task = progress.add_task(name, total=len(source.files()))
            report = fetch(name, dest, args.mirror, args.jobs,
                           on_file=lambda _file, t=task: progress.advance(t))
        out.print(f"{name}: {report.fetched + report.present} of {len(source.files())} files in "
                  f"{report.folder} ({report.fetched} fetched, {report.present} already there)",
                  highlight=False, soft_wrap=True)
        for line in report.errors:
            err.print(f"[red]error[/red] {escape(line)}", highlight=False, soft_wrap=True)
        failed |= bool(report.errors)
    configured = Path(data_dir(str(project_root())))
    if not os.environ.get(DATA_ENV) and configured.resolve() != dest.resolve():
        err.print(f"note: the configs read data from {configured}; set {DATA_ENV}={dest} "
                  "to use this copy", highlight=False, soft_wrap=True)
    return 1 if failed else 0


def fetch_hint(name: str) -> str:
    """The sentence a loader's missing-data error ends with."""
    return (f"`metalearn data fetch {name}` downloads it into ${DATA_ENV} (else ./data); "
            f"`--from DIR` copies a local mirror")
