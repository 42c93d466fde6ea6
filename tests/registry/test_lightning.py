"""The logger/callback pair on a tiny Lightning run: metrics, lifecycle, failures, overhead."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from omegaconf import OmegaConf
from pytorch_lightning.utilities.exceptions import SIGTERMException
from torch.utils.data import DataLoader, TensorDataset

from metalearn.registry import RegistryCallback, RegistryLogger, Store, record_attempt, schema
from metalearn.registry.session import active


class Tiny(pl.LightningModule):
    """A linear classifier with manual optimization, logging the core's metric names."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.net = torch.nn.Linear(4, 2)
        self.fail_at = fail_at
        self.test_results: list[dict] = []

    def training_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        if self.fail_at is not None and self.global_step >= self.fail_at:
            raise RuntimeError("boom")
        x, y = batch
        opt = self.optimizers()
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()
        self.log("train/query_loss", loss)
        self.log("train/query_acc", (self.net(x).argmax(1) == y).float().mean())

    def validation_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        self.log("val/acc", (self.net(x).argmax(1) == y).float().mean())

    def test_step(self, batch, batch_idx):  # noqa: ANN001, ANN201
        x, y = batch
        acc = (self.net(x).argmax(1) == y).float().mean()
        self.log("test/acc", acc)
        self.test_results = [
            {"group": "books", "metric": "acc", "value": float(acc), "ci95": 0.01, "episodes": 4,
             "shots": 5, "queries": 3}
        ]

    def configure_optimizers(self):  # noqa: ANN201
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _loader() -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=4)


def _trainer(tmp_path: Path, steps: int = 20, **kwargs) -> pl.Trainer:  # noqa: ANN003
    return pl.Trainer(
        max_steps=steps, logger=[RegistryLogger()], callbacks=[RegistryCallback()],
        default_root_dir=str(tmp_path), enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, val_check_interval=10,
        limit_val_batches=2, accelerator="cpu", **kwargs,
    )


def _cfg(url: str, **extra) -> OmegaConf:  # noqa: ANN003
    return OmegaConf.create({
        "task_name": "train", "train": True, "test": True, "seed": 0, "tags": ["unit"],
        "registry": {"url": url, "flush_s": 0.05, "heartbeat_s": 0.1, "lease_s": 5},
        **extra,
    })


def test_a_run_records_every_step_its_checkpoint_and_test_results(tmp_path: Path, registry_url: str) -> None:
    with record_attempt(_cfg(registry_url)) as session:
        trainer = _trainer(tmp_path)
        model = Tiny()
        trainer.fit(model, _loader(), _loader())
        trainer.test(model, _loader())
        attempt = session.attempt_id
    assert active() is None
    store = Store(registry_url)
    row = store.get_attempt(attempt)
    assert row["status"] == schema.COMPLETED and row["error"] is None
    assert row["config"]["tags"] == ["unit"] and row["host"] and row["pid"]
    assert row["ckpt_path"] and Path(row["ckpt_path"]).is_file()
    loss = store.metrics(attempt, name="train/query_loss")
    assert [r["step"] for r in loss] == list(range(20))  # every step, not only the last
    summary = store.metric_summary(attempt)
    assert {"val/acc", "test/acc", "train/query_acc"} <= set(summary)
    assert store.test_results(attempt)[0]["group"] == "books"


def test_a_failing_run_is_failed_with_traceback_and_keeps_its_metrics(tmp_path: Path, sqlite_url: str) -> None:
    with pytest.raises(RuntimeError, match="boom"):
        with record_attempt(_cfg(sqlite_url)):
            _trainer(tmp_path).fit(Tiny(fail_at=5), _loader())
    store = Store(sqlite_url)
    (row,) = store.list_attempts(with_config=True)
    assert row["status"] == schema.FAILED
    assert "Traceback" in row["error"] and "RuntimeError: boom" in row["error"]
    assert [r["step"] for r in store.metrics(row["id"], name="train/query_loss")] == list(range(5))


def test_a_failure_before_training_is_recorded(sqlite_url: str) -> None:
    with pytest.raises(FileNotFoundError):
        with record_attempt(_cfg(sqlite_url)):
            open("/nonexistent/data.json")  # noqa: SIM115 (a data module failing to load)
    (row,) = Store(sqlite_url).list_attempts(with_config=True)
    assert row["status"] == schema.FAILED and "FileNotFoundError" in row["error"]


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(1), SIGTERMException()])
def test_interrupts_are_interrupted(sqlite_url: str, exc: BaseException) -> None:
    with pytest.raises(type(exc)):
        with record_attempt(_cfg(sqlite_url)):
            raise exc
    assert Store(sqlite_url).list_attempts()[0]["status"] == schema.INTERRUPTED


def test_a_clean_exit_is_completed(sqlite_url: str) -> None:
    with pytest.raises(SystemExit):
        with record_attempt(_cfg(sqlite_url)):
            raise SystemExit(0)
    assert Store(sqlite_url).list_attempts()[0]["status"] == schema.COMPLETED


def test_disabled_registry_records_nothing(sqlite_url: str) -> None:
    cfg = _cfg(sqlite_url)
    cfg.registry = None  # what registry=off gives
    with record_attempt(cfg) as session:
        assert session is None
    assert Store(sqlite_url).list_attempts() == []


def test_the_logger_alone_opens_its_own_attempt(tmp_path: Path, sqlite_url: str) -> None:
    trainer = pl.Trainer(
        max_steps=6, logger=[RegistryLogger(url=sqlite_url, flush_s=0.05, heartbeat_s=0.1, lease_s=5)],
        callbacks=[RegistryCallback(save_last=False)], default_root_dir=str(tmp_path),
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        log_every_n_steps=1, accelerator="cpu", limit_val_batches=0,
    )
    trainer.fit(Tiny(), _loader())
    store = Store(sqlite_url)
    (row,) = store.list_attempts()
    assert row["status"] == schema.COMPLETED
    assert len(store.metrics(row["id"], name="train/query_loss")) == 6


def test_log_metrics_only_queues(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot path only queues: no row is written by the thread that logs, while it logs
    (the writer thread does it). A behaviour, not a timing: it holds on a loaded machine."""
    writes, logging_now = [], threading.Event()
    add_metrics = Store.add_metrics

    def spy(self: Store, attempt_id: int, rows: list) -> None:
        writes.append((threading.current_thread(), logging_now.is_set()))
        add_metrics(self, attempt_id, rows)

    monkeypatch.setattr(Store, "add_metrics", spy)
    n = 5000
    with record_attempt(_cfg(sqlite_url)) as session:
        logger = RegistryLogger()
        logging_now.set()
        for step in range(n):
            logger.log_metrics({"train/query_loss": 0.5, "train/query_acc": 0.5, "epoch": 0.0}, step)
        logging_now.clear()
        attempt = session.attempt_id
    assert writes  # the rows were written ...
    assert not [t for t, during in writes if during and t is threading.current_thread()]  # ... elsewhere
    assert len(Store(sqlite_url).metrics(attempt)) == 3 * n


def test_the_registry_password_is_not_stored(pg_url: str) -> None:
    url = pg_url.replace("postgres@", "postgres:topsecret@")  # the test server trusts any password
    with record_attempt(_cfg(url)) as session:
        attempt = session.attempt_id
    row = Store(pg_url).get_attempt(attempt)
    assert row["config"]["registry"]["url"] == url.replace("topsecret", "***")
    assert "topsecret" not in str(row)


def test_ddp_spawn_workers_write_into_the_attempt(tmp_path: Path, sqlite_url: str) -> None:
    """ddp_spawn pickles the logger into a new process: it rejoins the attempt from there."""
    with record_attempt(_cfg(sqlite_url)) as session:
        trainer = _trainer(tmp_path, steps=6, strategy="ddp_spawn", devices=1)
        trainer.fit(Tiny(), _loader(), _loader())
        attempt = session.attempt_id
    store = Store(sqlite_url)
    row = store.get_attempt(attempt)
    assert row["status"] == schema.COMPLETED and row["ckpt_path"]
    assert [r["step"] for r in store.metrics(attempt, name="train/query_loss")] == list(range(6))
    assert len(store.list_attempts()) == 1


def test_the_attempt_records_the_run_name_of_its_loggers(tmp_path: Path, sqlite_url: str) -> None:
    """TensorBoard's run (<name>/<version>) when there is one, else another logger's."""
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    names = []
    for others in ([CSVLogger(tmp_path, name="csv"), TensorBoardLogger(tmp_path, name="tiny", version="v_a")],
                   [CSVLogger(tmp_path, name="tiny_csv")]):
        with record_attempt(_cfg(sqlite_url)) as session:
            trainer = pl.Trainer(
                max_steps=2, logger=[RegistryLogger(), *others], callbacks=[RegistryCallback(save_last=False)],
                default_root_dir=str(tmp_path), enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, accelerator="cpu", limit_val_batches=0,
            )
            trainer.fit(Tiny(), _loader())
            names.append(Store(sqlite_url).get_attempt(session.attempt_id)["log_name"])
    assert names == ["tiny/v_a", "tiny_csv/version_0"]
