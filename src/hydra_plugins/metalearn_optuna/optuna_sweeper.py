"""`hydra/sweeper=optuna`: Optuna's ask-and-tell loop over Hydra's launcher.

Each trial is one job of the configured launcher (basic, joblib, submitit), so one attempt in
the run registry, told which study and trial it is (`study.name`, `study.trial`). The study
lives in a database, the registry's by default, so a sweep stopped halfway resumes where it
was: trials left running are marked failed and asked again. Past attempts teach the study:
`warm_start: N` enqueues the best N finished attempts of the same experiment as its first
trials, and a trial whose config equals a finished attempt's takes that attempt's value
instead of training again (`reuse`).

Written for Optuna 4 and later (Hydra's own Optuna sweeper pins Optuna below 3).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from hydra.core.plugins import Plugins
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

# Optuna comes with the `sweep` extra. Hydra imports every installed plugin at each run, so
# without Optuna this module must still import (else every run warns that the plugin is
# broken); the sweeper then says what is missing when a sweep asks for it. For the same
# reason the run registry (SQLAlchemy) loads only in the methods a sweep calls: a run with
# `registry=off` never loads it.
MISSING: ModuleNotFoundError | None = None
try:
    import optuna
    from optuna.trial import TrialState

    from metalearn.sweep.space import SearchSpaceError, as_override, parse_space
except ModuleNotFoundError as err:
    if err.name != "optuna":
        raise
    MISSING = err

log = logging.getLogger(__name__)

DIRECTIONS = {"max": "maximize", "maximize": "maximize", "min": "minimize", "minimize": "minimize"}


class OptunaSweeper(Sweeper):
    """Hydra sweeper: the study's trials as launcher jobs, values from what the job returns."""

    def __init__(
        self,
        sampler: DictConfig,
        direction: str,
        storage: str | None,
        study_name: str,
        n_trials: int,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        warm_start: int = 0,
        reuse: bool = True,
        params: DictConfig | None = None,
        seed: int = 0,
    ) -> None:
        if MISSING is not None:
            raise ModuleNotFoundError(
                "hydra/sweeper=optuna (hparams_search=...) needs Optuna: pip install "
                "'metalearn-lightning[sweep]', or '.[sweep]' in a clone", name="optuna"
            ) from MISSING
        if str(direction) not in DIRECTIONS:
            raise SearchSpaceError(f"hydra.sweeper.direction: {direction!r} is not one of "
                                   f"{sorted(DIRECTIONS)}")
        for key, value, low in (("n_trials", n_trials, 1), ("n_jobs", n_jobs, 1),
                                ("warm_start", warm_start, 0)):
            if not isinstance(value, int) or value < low:
                raise SearchSpaceError(f"hydra.sweeper.{key}: {value!r} is not an integer >= {low}")
        if not 0.0 <= float(max_failure_rate) <= 1.0:
            raise SearchSpaceError(f"hydra.sweeper.max_failure_rate: {max_failure_rate!r} is "
                                   "not in [0, 1]")
        # a partial (the config's `_partial_: true`): made with a seed once the study's size is known
        self.sampler = instantiate(sampler)
        self.seed = int(seed)
        self.direction = DIRECTIONS[str(direction)]
        self.storage = storage
        self.study_name = str(study_name)
        self.n_trials = n_trials
        self.n_jobs = n_jobs
        self.max_failure_rate = float(max_failure_rate)
        self.warm_start = warm_start
        self.reuse = bool(reuse)
        self.params = OmegaConf.to_container(params) if params is not None else None
        self.config: DictConfig | None = None

    def setup(
        self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig
    ) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function)
        self.job_idx = 0

    def sweep(self, arguments: list[str]) -> None:
        assert self.config is not None
        space, fixed = parse_space(self.params, arguments)
        if not space:
            raise SearchSpaceError("hydra.sweeper.params: nothing to search (give at least one "
                                   "choice(...), range(...) or interval(...))")
        metric = str(self.config.optimized_metric)
        mode = "max" if self.direction == "maximize" else "min"
        study = optuna.create_study(study_name=self.study_name, storage=self._storage(),
                                    direction=self.direction, load_if_exists=True)
        # Seeded by the study's size: a new study asks the same trials every time, and a resumed
        # one does not ask again the random trials its first run asked.
        study.sampler = self.sampler(seed=self.seed + len(study.trials))
        self._resume(study)
        known = self._past(metric, mode)
        if self.warm_start and not study.trials:
            self._enqueue_best(study, space, known)
        done = sum(t.state.is_finished() for t in study.trials)
        log.info("study %s (%s %s, storage %s): %d of %d trials done", self.study_name,
                 self.direction, metric, self._shown_storage(), done, self.n_trials)
        while done < self.n_trials:
            batch = [study.ask(space) for _ in range(min(self.n_jobs, self.n_trials - done))]
            to_run: list[tuple[optuna.trial.Trial, list[str]]] = []
            for trial in batch:
                overrides = self._overrides(trial, fixed)
                reused = self._reused(overrides, known) if self.reuse else None
                if reused is not None:
                    attempt, value = reused
                    trial.set_user_attr("reused_attempt", int(attempt["id"]))
                    study.tell(trial, value)
                    log.info("trial %d: same config as attempt %d, value %.6g reused",
                             trial.number, attempt["id"], value)
                else:
                    to_run.append((trial, overrides))
            if to_run:
                self._launch(study, to_run)
            done += len(batch)
        self._report(study, metric)

    # -- the loop's parts ------------------------------------------------------------------

    def _storage(self) -> str | None:
        """The study's database URL (a PostgreSQL registry URL gets the psycopg driver)."""
        if not self.storage:
            log.warning("hydra.sweeper.storage is empty: the study lives in memory and cannot "
                        "resume")
            return None
        from metalearn.registry.engine import normalize_url
        from metalearn.registry.store import Store

        Store(str(self.storage)).close()  # the registry's folder and tables, made if missing
        return normalize_url(str(self.storage)).render_as_string(hide_password=False)

    def _shown_storage(self) -> str:
        if not self.storage:
            return "memory"
        from metalearn.registry.engine import normalize_url

        return normalize_url(str(self.storage)).render_as_string(hide_password=True)

    def _resume(self, study: optuna.Study) -> None:
        """Trials an interrupted sweep left running are failed, and their parameters asked
        again first, so a resumed study runs exactly what was not finished."""
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            study.tell(trial.number, state=TrialState.FAIL)
            study.enqueue_trial(trial.params, user_attrs={"resumes": trial.number})
            log.info("trial %d was left running: failed, and enqueued again", trial.number)

    def _past(self, metric: str, mode: str) -> list[tuple[dict, float]]:
        """Finished attempts of this experiment with their values (none without a registry)."""
        url = OmegaConf.select(self.config, "registry.url", default=None)
        if not url or not (self.reuse or self.warm_start):
            return []
        experiment = OmegaConf.select(self.config, "hydra.runtime.choices.experiment",
                                      default=None)
        from metalearn.registry.store import Store
        from metalearn.sweep import past

        store = Store(str(url))
        try:
            return past.finished(store, experiment, metric, mode)
        finally:
            store.close()

    def _enqueue_best(self, study: optuna.Study, space: dict, known: Sequence) -> None:
        """The best `warm_start` finished attempts' parameters as the first trials."""
        from metalearn.sweep import past

        queued = 0
        for attempt, value in known:
            params = past.params_of(attempt, space)
            if params is None:
                continue
            study.enqueue_trial(params, user_attrs={"warm_start_attempt": int(attempt["id"])},
                                skip_if_exists=True)
            log.info("warm start: attempt %d (%.6g) enqueued: %s", attempt["id"], value, params)
            queued += 1
            if queued == self.warm_start:
                break

    def _overrides(self, trial: optuna.trial.Trial, fixed: dict[str, str]) -> list[str]:
        """The job's overrides: fixed values, the trial's parameters, its study and number."""
        return ([f"{k}={v}" for k, v in fixed.items()]
                + [as_override(k, v) for k, v in trial.params.items()]
                + [f"study.name={self.study_name}", f"study.trial={trial.number}"])

    def _reused(self, overrides: list[str], known: Sequence) -> tuple[dict, float] | None:
        """A finished attempt whose config equals this trial's, with its value."""
        if not known:
            return None
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        with open_dict(cfg):
            del cfg["hydra"]
        from metalearn.sweep import past

        return past.same_config(past.comparable_trial(cfg), known)

    def _launch(self, study: optuna.Study, to_run: list) -> None:
        """Run the trials as one launcher batch and tell the study what each returned."""
        returns = self.launcher.launch([o for _, o in to_run], initial_job_idx=self.job_idx)
        self.job_idx += len(returns)
        failures = 0
        for (trial, _), ret in zip(to_run, returns, strict=True):
            try:
                value = ret.return_value  # re-raises the job's exception
                if value is None:
                    raise ValueError(f"the job returned no value for {self.config.optimized_metric}"
                                     " (is it logged during validation?)")
                study.tell(trial, float(value))
            except Exception as exc:  # noqa: BLE001 - any job failure fails only its trial
                failures += 1
                study.tell(trial, state=TrialState.FAIL)
                log.warning("trial %d failed: %s", trial.number, exc)
        if failures and failures / len(to_run) > self.max_failure_rate:
            raise RuntimeError(f"{failures} of {len(to_run)} trials failed (above "
                               f"hydra.sweeper.max_failure_rate={self.max_failure_rate}); the "
                               "study is kept and resumes on the next run")

    def _report(self, study: optuna.Study, metric: str) -> None:
        """Log the best trial and write it next to the sweep's jobs (optimization_results.yaml)."""
        complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not complete:
            log.warning("study %s has no completed trial", self.study_name)
            return
        best = study.best_trial
        log.info("best trial %d: %s = %.6g with %s", best.number, metric, best.value, best.params)
        results = OmegaConf.create({"study": self.study_name, "metric": metric,
                                    "direction": self.direction, "best_trial": best.number,
                                    "best_value": best.value, "best_params": best.params,
                                    "trials": len(study.trials)})
        out = Path(str(self.config.hydra.sweep.dir))
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(results, out / "optimization_results.yaml")
