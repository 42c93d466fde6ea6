"""Lightning's CSVLogger, able to go on with a metrics file that another process began.

Under `ddp_spawn` meta-training runs in spawned workers and the test stage in fresh copies of
the logger that never saw the file's header; Lightning's writer then rewrites the file with
only the test keys and fails ("dict contains fields not in fieldnames"). This writer reads the
existing header before adding keys to it.
"""
from __future__ import annotations

import csv

from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter


class ContinuingWriter(ExperimentWriter):
    """An ExperimentWriter that starts from the keys of the metrics file already on disk."""

    def _record_new_keys(self) -> set[str]:
        if not self.metrics_keys and self._fs.isfile(self.metrics_file_path):
            with self._fs.open(self.metrics_file_path, "r", newline="") as f:
                self.metrics_keys = list(next(csv.reader(f), []))  # Lightning writes them sorted
        return super()._record_new_keys()


class CSVLogger(LightningCSVLogger):
    """`pytorch_lightning.loggers.CSVLogger` with a ContinuingWriter (see the module doc)."""

    @property
    @rank_zero_experiment
    def experiment(self) -> ContinuingWriter:
        if self._experiment is None:
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = ContinuingWriter(log_dir=self.log_dir)
        return self._experiment
