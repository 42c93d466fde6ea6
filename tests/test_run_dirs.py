"""Two runs started in the same second get their own output folders: Hydra names a run's folder
by its start time, and a second run writing into the first's would mix their checkpoints
(`step000050.ckpt` from either), so its meta-test could score the other run's weights."""
from __future__ import annotations

import datetime as dt
import re

import hydra.core.utils
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf

from metalearn.conf import compose_train


def run_dirs(monkeypatch, *times: dt.datetime) -> list[str]:
    """hydra.run.dir as each of several processes started at `times` resolves it."""
    found = []
    for when in times:
        class Clock(dt.datetime):
            @classmethod
            def now(cls, tz=None, started=when):
                return started

        monkeypatch.setattr(hydra.core.utils, "datetime", Clock)  # what Hydra's `now` reads
        cfg = compose_train(["experiment=reptile_amazon"], return_hydra_config=True)
        OmegaConf.clear_cache(cfg)  # Hydra's `now` caches its answer, per process
        HydraConfig.instance().set_config(cfg)
        try:
            found.append(str(cfg.hydra.run.dir))
        finally:
            HydraConfig.instance().cfg = None
    return found


def test_runs_started_in_the_same_second_do_not_share_a_folder(monkeypatch):
    second = dt.datetime(2026, 12, 5, 13, 14, 53)
    first, other = run_dirs(monkeypatch, second.replace(microsecond=104), second.replace(microsecond=88012))
    assert first != other
    assert re.search(r"/runs/2026-12-05_13-14-53_\d{6}$", first)  # still sorted by start time
