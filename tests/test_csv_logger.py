"""The CSV logger goes on with a metrics file another process began (ddp_spawn's test stage)."""
import csv
import pickle

import pytest
from pytorch_lightning.loggers import CSVLogger as LightningCSVLogger

from metalearn.csv_logger import CSVLogger


def log_in_two_processes(cls, tmp_path):
    """As under ddp_spawn: the main process's logger (writer made, nothing written yet) is
    pickled into a training worker, which writes, and again into a test worker, which adds keys."""
    main = cls(save_dir=tmp_path, name="csv")
    main.log_hyperparams({"seed": 42})  # creates the writer in the main process
    state = pickle.dumps(main)
    for keys, step in ((("train/loss", "val/acc"), 0), (("test/acc",), 1)):
        worker = pickle.loads(state)
        worker.log_metrics({k: 0.5 for k in keys}, step=step)
        worker.save()
    with open(tmp_path / "csv" / "version_0" / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_fresh_copy_keeps_the_rows_and_columns_already_written(tmp_path):
    rows = log_in_two_processes(CSVLogger, tmp_path)
    assert rows == [{"step": "0", "test/acc": "", "train/loss": "0.5", "val/acc": "0.5"},
                    {"step": "1", "test/acc": "0.5", "train/loss": "", "val/acc": ""}]


def test_lightnings_own_logger_fails_there(tmp_path):
    """What the fix is for: if Lightning fixes it, this fails and the subclass can go."""
    with pytest.raises(ValueError, match="fields not in fieldnames"):
        log_in_two_processes(LightningCSVLogger, tmp_path)
