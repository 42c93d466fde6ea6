"""experiments/bench/web_first_page.py at a tiny size: it fills a registry, every page it times
answers, and its counts are what it wrote (its timings are figures, never checked here)."""
from __future__ import annotations

import json
from pathlib import Path

from experiments.bench import web_first_page


def test_the_first_page_bench_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    figures = web_first_page.main(["--attempts", "50", "--repeats", "1", "--out", str(out)])
    assert figures["counts"]["attempts"] == 50
    # 45 train attempts x 10 names x 10 steps, and test metrics of the completed ones
    assert figures["counts"]["metric rows"] > 45 * 100
    assert [p["url"] for p in figures["pages"]] == [url for _label, url in web_first_page.PAGES]
    assert all(p["bytes"] > 0 and p["median_s"] > 0 for p in figures["pages"])
    assert json.loads(out.read_text())["attempts"] == 50
