"""Fixtures of the web pages' tests: the API fixtures they share (an app over a temp registry),
one real `metalearn serve` per test module, and one headless Chromium per module driven by
Debian's chromedriver (selenium never looks for or downloads a driver)."""
from __future__ import annotations

import base64
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from metalearn.api import local_server
from tests.api.conftest import (  # noqa: F401 (fixtures the web tests share)
    LIVE_TOKEN,
    ROOT,
    SERVER_START_S,
    TOKEN,
    log_root,
    project_folder,
    runner,
    served_env,
    served_project,
    store,
    validator,
)

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
APT_HINT = "apt-get install -y chromium chromium-driver (Debian); `bash scripts/setup.sh test` does it as root"
SCREENSHOTS_ENV = "METALEARN_SCREENSHOTS"  # a folder: the browser tests save each page's screenshot there
WIDTH = 1280
MAX_SHOT_HEIGHT = 2400
CSRF_INPUT = re.compile(r'name="csrf" value="([^"]+)"')


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (which binary or package is missing), else None."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.is_file()]
    if missing:
        return f"{' and '.join(missing)} not installed: {APT_HINT}"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed: pip install -e '.[dev]'"
    return None


def csrf_of(html: str) -> str:
    """The CSRF token a signed-in page's forms carry."""
    found = CSRF_INPUT.search(html)
    assert found, "no CSRF field on the page: is the viewer signed in?"
    return found.group(1)


@dataclass(frozen=True)
class WebServer:
    """A running `metalearn serve`: its base URL, registry URL, log file and log folder."""

    base: str
    registry: str
    log: Path
    log_dir: Path

    def log_tail(self, chars: int = 3000) -> str:
        return local_server.log_tail(self.log, chars)


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    """`metalearn serve` (token LIVE_TOKEN, loopback, one training process at a time) over a temp
    registry, started in a project folder outside the clone, shared by a module's tests: a
    browser test signs in once and the runs it starts stay for the next test."""
    home = tmp_path_factory.mktemp("web-server")
    project = project_folder(home)
    registry = f"sqlite:///{home / 'registry.db'}"
    with local_server.running(registry, token=LIVE_TOKEN, cwd=project, log_path=home / "server.log",
                              serve_args=["--max-parallel", "1"], env={**served_env(), "OMP_NUM_THREADS": "1"},
                              unset=["PROJECT_ROOT"], timeout=SERVER_START_S) as live:
        yield WebServer(live.base, registry, live.log_path, project / "logs")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's) under Debian's chromedriver, 1280 wide, resolving no host
    but 127.0.0.1 (a page that needs another host fails visibly), shared by a module's tests."""
    why = browser_missing()
    if why:
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = Path(tempfile.mkdtemp(prefix="metalearn-chromium-"))
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--user-data-dir={profile}", f"--window-size={WIDTH},1000", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     "--disable-quic", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(argument)
    # An alert a page opens stays open (not dismissed by the next command) for a test to find.
    options.set_capability("unhandledPromptBehavior", "ignore")
    # The console's messages, for the tests to see what the page's policy refused.
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A path for the driver and the browser: selenium-manager is never asked (it would download).
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str, max_height: int = MAX_SHOT_HEIGHT) -> Path | None:
    """The whole page from its top, 1280 wide and at most max_height high, as
    $METALEARN_SCREENSHOTS/web-<name>.png when that variable names a folder; nothing otherwise."""
    folder = os.environ.get(SCREENSHOTS_ENV)
    if not folder:
        return None
    path = Path(folder) / f"web-{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    # The page down to the end of its content (a short page leaves no empty window below), with
    # no field focused (no caret or focus ring in the picture).
    height = int(driver.execute_script(
        "if (document.activeElement) { document.activeElement.blur(); }"
        "var main = document.querySelector('main');"
        "var bottom = main ? main.getBoundingClientRect().bottom + window.scrollY + 24 : 0;"
        "return Math.ceil(Math.min(bottom || Infinity, document.documentElement.scrollHeight));"))
    clip = {"x": 0, "y": 0, "width": WIDTH, "height": min(max(height, 400), max_height), "scale": 1}
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "clip": clip,
                                                             "captureBeyondViewport": True})
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
