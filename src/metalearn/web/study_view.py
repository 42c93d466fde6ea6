"""What the study page shows: an Optuna study run by metalearn's sweeper, trial by trial.

The sweeper (hydra_plugins/metalearn_optuna) keeps the study in an Optuna storage, the
registry's own database by default, and each trial it launches records an attempt carrying
`study` and `trial`. Where that storage is readable (Optuna installed, the study in this
registry's database) its trials are the truth: their states, the values Optuna was told, the
parameters it chose, and the trials that reused a finished attempt's value and never ran.
Otherwise the attempts alone tell the story: the value is what run.py returns to the sweeper
(the best `optimized_metric` reached), the parameters are the overrides that vary between
trials. The storage is only read (no table is created, no schema checked or upgraded).
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect
from sqlalchemy.exc import SQLAlchemyError

from metalearn.registry import report, schema
from metalearn.registry.errors import NotFound
from metalearn.registry.store import Store

log = logging.getLogger(__name__)

MAXIMIZE, MINIMIZE = "maximize", "minimize"
# Override keys the sweeper adds to every trial: which study and trial it is, not what it tried.
BOOKKEEPING = ("study.name", "study.trial")


@dataclass
class Trial:
    """One trial: its number, state (the attempt's status, else Optuna's state), the value the
    study was told (None until it finished well), its parameters, its attempt (None for a
    trial that reused another attempt's value or never started) and that reused attempt."""

    number: int
    state: str
    value: float | None
    params: dict[str, Any]
    attempt_id: int | None = None
    reused: int | None = None

    @property
    def finished(self) -> bool:
        """Finished with a value: drawn in the charts."""
        return self.value is not None and math.isfinite(self.value)


@dataclass
class Study:
    """A study's trials in order, what they optimise, and where the page read them."""

    name: str
    metric: str
    direction: str  # maximize | minimize
    trials: list[Trial]
    params: list[str]  # parameter names, in the order the columns and axes show them
    source: str  # "optuna" (the sweeper's storage) or "registry" (the attempts alone)
    experiments: list[str] = field(default_factory=list)

    @property
    def best(self) -> Trial | None:
        done = [t for t in self.trials if t.finished]
        if not done:
            return None
        pick = max if self.direction == MAXIMIZE else min
        return pick(done, key=lambda t: t.value)

    @property
    def active(self) -> bool:
        """Whether a trial may still change (the page then polls for updates)."""
        return any(t.state in (schema.QUEUED, *schema.ACTIVE, "running", "waiting") for t in self.trials)


def study_of(store: Store, name: str) -> Study:
    """The study called name, from the sweeper's storage where readable, else from its
    attempts; raises NotFound when neither knows it."""
    attempts = _attempts(store, name)
    metric, mode = _objective(attempts)
    optuna_study = _optuna_trials(store, name)
    if optuna_study is None:
        if not attempts:
            raise NotFound(f"no study called {name!r}: no attempt records it and the registry's "
                           "database holds no Optuna study of that name")
        return _from_registry(store, name, attempts, metric, mode)
    frozen, direction = optuna_study
    trials = [_from_optuna(t, attempts) for t in sorted(frozen, key=lambda t: t.number)]
    numbers = {t.number for t in trials}
    # trials recorded in the registry but not in this storage (a study kept elsewhere as well)
    trials += [_registry_trial(store, number, a, metric, mode, {}) for number, a in sorted(attempts.items())
               if number not in numbers]
    trials.sort(key=lambda t: t.number)
    params = list(dict.fromkeys(k for t in trials for k in t.params))
    return Study(name, metric, direction, trials, params, "optuna", _experiments(attempts))


def _attempts(store: Store, name: str) -> dict[int, dict[str, Any]]:
    """The study's attempts by trial number (the newest where a number repeats)."""
    by_trial: dict[int, dict[str, Any]] = {}
    for row in store.list_attempts(study=name, with_config=True):  # newest first
        if row["trial"] is not None:
            by_trial.setdefault(int(row["trial"]), row)
    return by_trial


def _objective(attempts: dict[int, dict[str, Any]]) -> tuple[str, str]:
    """(metric, mode) the sweep optimised: the attempts' `optimized_metric` (what run.py
    returns to the sweeper) and their objective's direction; val/acc, max if none says."""
    metrics: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for row in attempts.values():
        config = row.get("config") if isinstance(row.get("config"), dict) else {}
        metric, mode = report.objective_of(config)
        metrics[str(config.get("optimized_metric") or f"val/{metric}")] += 1
        modes[mode] += 1
    metric = metrics.most_common(1)[0][0] if metrics else "val/acc"
    mode = modes.most_common(1)[0][0] if modes else "max"
    return metric, mode


def _experiments(attempts: dict[int, dict[str, Any]]) -> list[str]:
    return sorted({str(a["experiment"]) for a in attempts.values() if a.get("experiment")})


def _optuna_trials(store: Store, name: str) -> tuple[list[Any], str] | None:
    """The study's frozen trials and direction from an Optuna storage in the registry's
    database; None without Optuna, without its tables, or without that study."""
    try:
        from optuna.storages import RDBStorage
    except ModuleNotFoundError:
        return None
    url = store.engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return None  # a second engine would open another, empty, database
    try:
        if not inspect(store.engine).has_table("studies"):
            return None
        storage = RDBStorage(url.render_as_string(hide_password=False), skip_compatibility_check=True,
                             skip_table_creation=True)
    except SQLAlchemyError as exc:
        log.warning("the registry's Optuna tables cannot be read (%s); the study page shows its attempts", exc)
        return None
    try:
        study_id = storage.get_study_id_from_name(name)
        trials = storage.get_all_trials(study_id, deepcopy=False)
        directions = storage.get_study_directions(study_id)
    except KeyError:
        return None
    except SQLAlchemyError as exc:
        log.warning("study %r: its Optuna trials cannot be read (%s); the page shows its attempts", name, exc)
        return None
    finally:
        storage.engine.dispose()
    direction = MINIMIZE if directions and directions[0].name == "MINIMIZE" else MAXIMIZE
    return list(trials), direction


def _from_optuna(trial: Any, attempts: dict[int, dict[str, Any]]) -> Trial:
    """A trial as Optuna recorded it, with its attempt's status where it has one."""
    attempt = attempts.get(trial.number)
    state = trial.state.name.lower()  # complete, fail, running, waiting, pruned
    value = trial.value if state == "complete" else None
    reused = trial.user_attrs.get("reused_attempt")
    return Trial(number=trial.number, state=attempt["status"] if attempt else state,
                 value=float(value) if value is not None else None, params=dict(trial.params),
                 attempt_id=int(attempt["id"]) if attempt else None,
                 reused=int(reused) if isinstance(reused, int) else None)


def _from_registry(store: Store, name: str, attempts: dict[int, dict[str, Any]], metric: str,
                   mode: str) -> Study:
    """A study told by its attempts alone: the parameters are the overrides that differ
    between its trials (every override but the bookkeeping ones where there is one trial)."""
    overrides = {n: _overrides(a) for n, a in attempts.items()}
    keys = list(dict.fromkeys(k for o in overrides.values() for k in o))
    if len(overrides) > 1:
        keys = [k for k in keys if len({repr(o.get(k)) for o in overrides.values()}) > 1]
    trials = [_registry_trial(store, n, a, metric, mode, {k: overrides[n][k] for k in keys if k in overrides[n]})
              for n, a in sorted(attempts.items())]
    return Study(name, metric, MAXIMIZE if mode == "max" else MINIMIZE, trials, keys, "registry",
                 _experiments(attempts))


def _registry_trial(store: Store, number: int, attempt: dict[str, Any], metric: str, mode: str,
                    params: dict[str, Any]) -> Trial:
    """A trial from its attempt: a completed one's value is what run.py returned (the best
    value the metric reached)."""
    value = None
    if attempt["status"] == schema.COMPLETED:
        # as metalearn.sweep.past.attempt_value (which needs Optuna to import)
        summary = store.metric_summary(attempt["id"]).get(metric)
        value = None if summary is None else summary["max"] if mode == "max" else summary["min"]
    return Trial(number=number, state=attempt["status"], value=value, params=params, attempt_id=int(attempt["id"]))


def _overrides(attempt: dict[str, Any]) -> dict[str, Any]:
    """An attempt's `key=value` overrides (values typed where they read as numbers), leaving
    out deletions and the sweeper's bookkeeping."""
    out: dict[str, Any] = {}
    for override in attempt.get("overrides") or []:
        key, sep, value = str(override).partition("=")
        key = key.lstrip("+")
        if not sep or key.startswith("~") or key in BOOKKEEPING:
            continue
        out[key] = typed(value)
    return out


def typed(value: str) -> Any:
    """An override's value as an int or float where it reads as one, else the text."""
    for kind in (int, float):
        try:
            number = kind(value)
        except ValueError:
            continue
        return number if kind is int or math.isfinite(number) else value
    return value
