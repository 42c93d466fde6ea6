"""The GPU wall-time table of experiments/README.md ("On a GPU"), from the records in records/.

    python experiments/gpu/table.py            # Markdown, one row per attempt

Each record is a registry attempt exported with `metalearn runs export`: its command, status,
start and end, test results and every logged metric with its wall-clock time. The time per
meta-step is the median gap between consecutive training steps' logged metrics, so the two
meta-validations inside a run do not count towards it.
"""
from __future__ import annotations

import argparse
import csv
import gzip
import json
import statistics
from datetime import datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
HIDDEN = ("experiment=", "model.pretrained=")  # the same in every row; the model's path is the machine's


def step_ms(metrics: Path) -> tuple[float, int]:
    """Median milliseconds between consecutive meta-steps, and the number of steps logged."""
    with gzip.open(metrics, "rt", newline="") as f:
        times = {int(r["step"]): float(r["time"]) for r in csv.DictReader(f)
                 if r["name"] == "train/query_loss"}
    steps = sorted(times)
    gaps = [times[b] - times[a] for a, b in zip(steps, steps[1:], strict=False) if b == a + 1]
    return 1e3 * statistics.median(gaps), len(steps)


def seconds(record: dict) -> float:
    start, end = (datetime.fromisoformat(record[k].replace("Z", "+00:00"))
                  for k in ("started_at", "ended_at"))
    return (end - start).total_seconds()


def row(path: Path) -> str:
    r = json.loads(path.read_text())
    ms, steps = step_ms(path.with_name(r["metric_rows"]["file"]))
    settings = " ".join(o for o in r["overrides"] if not o.startswith(HIDDEN))
    tests = {t["group"]: t for t in r["test_results"] if t["metric"] == "acc"}
    if tests:
        acc = " / ".join(f"{100 * t['value']:.1f}" for _, t in sorted(tests.items()))
    else:
        acc = "-"
    gpu = ", ".join(r["environment"].get("accelerators") or ["no GPU"])
    cite = path.stem.rsplit("-", 1)[-1]
    return (f"| `{settings}` | {r['hardware']['precision']} | {r['status']} | {seconds(r):.0f} | "
            f"{steps} | {ms:.0f} | {acc} | {gpu} | [{cite}](gpu/records/{path.name}) |")


def table(folder: Path) -> str:
    """The Markdown table experiments/README.md holds (links relative to that file)."""
    lines = ["| run (`experiment=reptile_amazon`) | precision | status | wall s, start to end | "
             "meta-steps | ms per meta-step (median) | meta-test acc: automotive / "
             "computer_video_games / office_products | GPU | record |",
             "|---|---|---|---|---|---|---|---|---|"]
    lines += [row(p) for p in sorted(folder.glob("*.json"))]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--records", type=Path, default=HERE / "records")
    print(table(p.parse_args(argv).records))


if __name__ == "__main__":
    main()
