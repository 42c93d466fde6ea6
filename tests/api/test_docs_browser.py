"""/docs and /redoc in a real browser: Debian's headless Chromium, with no host but this machine
resolvable, renders every endpoint from the Swagger UI and ReDoc this server ships."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import httpx
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
HINT = "apt-get install -y chromium (Debian); `bash scripts/setup.sh test` does it when run as root"

pytestmark = pytest.mark.skipif(not CHROMIUM.is_file(),
                                reason=f"Debian's Chromium ({CHROMIUM}) is not installed: {HINT}")


def render(url: str, png: Path, height: int = 2000) -> str:
    """The page's DOM once its scripts have run, and a 1280-wide screenshot of it at png."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={png.with_suffix('.profile')}",
        # Only loopback resolves: a page that needs a CDN comes out blank even on a networked machine.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--window-size=1280,{height}", f"--screenshot={png}", "--dump-dom",
        "--virtual-time-budget=10000", url,
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def ink(png: Path) -> float:
    """The share of a screenshot's pixels that are not (near) white: 0 for a blank page."""
    with Image.open(png) as image:
        gray = image.convert("L")
    return 1 - sum(gray.histogram()[250:]) / (gray.width * gray.height)


@pytest.mark.slow  # about 20 s: a server and two browser runs
def test_docs_and_redoc_render_offline_in_chromium(server: str, tmp_path: Path) -> None:
    spec = httpx.get(f"{server}/openapi.json", timeout=10).json()
    endpoints = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    assert ("POST", "/runs") in endpoints

    docs_png = tmp_path / "docs.png"
    dom = render(f"{server}/docs", docs_png)
    shown = set(re.findall(r'opblock-summary-method">(\w+)</span>.{0,200}?data-path="([^"]+)"', dom, re.S))
    assert shown == endpoints, f"Swagger UI listed {sorted(shown)}; screenshot at {docs_png}"
    assert re.search(r'<button class="btn authorize', dom), "no Authorize button"
    with Image.open(docs_png) as image:
        assert image.size == (1280, 2000)
    assert ink(docs_png) > 0.1, f"/docs looks blank: {docs_png}"

    redoc_png = tmp_path / "redoc.png"
    dom = render(f"{server}/redoc", redoc_png, height=1400)
    summaries = {op["summary"] for ops in spec["paths"].values() for op in ops.values()}
    missing = sorted(s for s in summaries if s not in dom)
    assert not missing, f"ReDoc did not show {missing}; screenshot at {redoc_png}"
    assert ink(redoc_png) > 0.1, f"/redoc looks blank: {redoc_png}"
