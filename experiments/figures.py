"""The README's picture from the committed records: notebooks/results.ipynb run on them.

    python experiments/figures.py          # writes experiments/accuracy_vs_k.png

Loads every record of experiments/records/ into a throwaway SQLite registry (as `metalearn
runs import` does), then executes the results notebook top to bottom against it with
`METALEARN_FIGURE_DIR` set, so the figure is the notebook's own. Needs the `notebook` extra.
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

from metalearn.registry import records
from metalearn.registry.store import Store

HERE = Path(__file__).resolve().parent
NOTEBOOK = HERE.parent / "notebooks" / "results.ipynb"
FIGURES = ("accuracy_vs_k.png",)  # what the notebook saves that this folder keeps
log = logging.getLogger("figures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", default=str(HERE / "records"), help="the records folder")
    parser.add_argument("--out", default=str(HERE), help="where the figures go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/records.db"
        loaded = records.import_records(Store(url), [Path(args.records)])
        log.info("%d records loaded from %s", len(loaded), args.records)
        # the notebook's kernel inherits these; records carry no TensorBoard files
        os.environ.update({"METALEARN_REGISTRY_URL": url, "METALEARN_FIGURE_DIR": f"{tmp}/figures",
                           "METALEARN_LOG_DIR": f"{tmp}/logs"})
        nb = nbformat.read(NOTEBOOK, as_version=4)
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": tmp}}).execute()
        for name in FIGURES:
            shutil.copyfile(Path(tmp) / "figures" / name, Path(args.out) / name)
            log.info("wrote %s", Path(args.out) / name)


if __name__ == "__main__":
    main()
