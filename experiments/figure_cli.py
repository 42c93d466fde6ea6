"""The command line of a script that draws a figure from the records and prints its table."""
from __future__ import annotations

import argparse
import logging
from collections.abc import Callable
from pathlib import Path

RECORDS = Path(__file__).resolve().parent / "records"


def main(doc: str, *, figure: Callable[[Path, Path], None], table: Callable[[Path], str],
         default_figure: Path, name: str) -> None:
    """Parse --records / --figure, write the figure, log the table."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--records", type=Path, default=RECORDS, help="records folder")
    parser.add_argument("--figure", type=Path, default=default_figure, help="where to write the figure")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    figure(args.figure, args.records)
    logging.getLogger(name).info("\n%s", table(args.records))
