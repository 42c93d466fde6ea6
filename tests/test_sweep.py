"""hparams_search: the search space, the study in the registry, resume, warm start and reuse,
and the launchers, through the real entry point on a few steps of sinusoid regression."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from metalearn.registry.store import Store
from metalearn.sweep import past
from metalearn.sweep.space import SearchSpaceError, as_override, parse_space

ROOT = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_steps=4", "data.steps_per_epoch=2", "data.meta_batch_size=2",
        "data.val_episodes=3", "data.test_episodes=3", "logger=csv", "extras.print_config=false",
        "callbacks.rich_progress_bar=null"]


# -- the search space ---------------------------------------------------------------------

def test_sweep_grammar_becomes_optuna_distributions():
    space, fixed = parse_space(
        {"a.lr": "tag(log, interval(0.001, 0.1))", "a.steps": "range(1, 9)",
         "a.width": "interval(2, 6)", "d.batch": "choice(2, 4, 8)", "t.max_steps": "60"},
        ["a.rate=range(0.1, 0.5, 0.1)", "d.batch=choice(1, 3)"])
    assert space["a.lr"] == FloatDistribution(0.001, 0.1, log=True)
    assert space["a.steps"] == IntDistribution(1, 8)  # stop excluded, as range() in Python
    assert space["a.width"] == FloatDistribution(2.0, 6.0)  # Hydra: an interval is of floats
    assert space["a.rate"].low == pytest.approx(0.1) and space["a.rate"].step == pytest.approx(0.1)
    assert space["d.batch"] == CategoricalDistribution([1, 3])  # the command line wins
    assert fixed == {"t.max_steps": "60"}


@pytest.mark.parametrize("line, words", [
    ({"a.lr": "tag(log, interval(0.0, 1.0))"}, "a.lr: a log interval"),
    ({"a.lr": "interval(1.0, 0.5)"}, "a.lr: interval(1.0, 0.5) is empty"),
    ({"a.n": "range(5, 5)"}, "a.n: range(5,5) is empty"),
])
def test_a_space_optuna_cannot_search_names_the_key(line, words):
    with pytest.raises(SearchSpaceError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_space(line, [])


def test_a_trial_value_goes_back_as_the_same_override():
    assert as_override("a.lr", 0.1 + 0.2) == "a.lr=0.30000000000000004"
    assert as_override("a.flag", True) == "a.flag=true"
    assert as_override("a.none", None) == "a.none=null"
    assert as_override("m", "conv4") == "m=conv4"


# -- past attempts --------------------------------------------------------------------------

def test_configs_compare_without_where_and_how_they_were_written():
    attempt = {"output_dir": "/runs/7", "config": {
        "seed": 1, "algorithm": {"inner_lr": 0.1}, "trainer": {"default_root_dir": "/runs/7"},
        "callbacks": {"ckpt": {"dirpath": "/runs/7/checkpoints"}},
        "study": {"name": "old", "trial": 3}, "registry": {"url": "sqlite:///x"},
        "logger": {"csv": {"version": "attempt-7"}}}}
    trial = {"seed": 1, "algorithm": {"inner_lr": 0.1}, "trainer": {"default_root_dir": past.OUTPUT},
             "callbacks": {"ckpt": {"dirpath": f"{past.OUTPUT}/checkpoints"}}}
    assert past.same_config(trial, [(attempt, 0.5)]) == (attempt, 0.5)
    changed = {**trial, "algorithm": {"inner_lr": 0.2}}
    assert past.same_config(changed, [(attempt, 0.5)]) is None
    lr, seed = FloatDistribution(0.01, 1.0), IntDistribution(0, 10)
    assert past.params_of(attempt, {"algorithm.inner_lr": lr, "seed": seed}) == {
        "algorithm.inner_lr": 0.1, "seed": 1}
    assert past.params_of(attempt, {"algorithm": lr}) is None  # a group, not a value


def test_warm_start_skips_attempts_outside_the_space():
    """An attempt of another algorithm (plain SGD's outer step 0.5 where the study searches
    Adam's 0.0001..0.003) is no starting point: enqueued, it would run outside the space."""
    space = {"algorithm.optimizer.lr": FloatDistribution(1e-4, 3e-3, log=True),
             "data.meta_batch_size": CategoricalDistribution([2, 4, 8])}
    sgd = {"config": {"algorithm": {"optimizer": {"lr": 0.5}}, "data": {"meta_batch_size": 4}}}
    adam = {"config": {"algorithm": {"optimizer": {"lr": 0.0005}}, "data": {"meta_batch_size": 4}}}
    odd_batch = {"config": {"algorithm": {"optimizer": {"lr": 0.0005}},
                            "data": {"meta_batch_size": 5}}}
    assert past.params_of(sgd, space) is None
    assert past.params_of(odd_batch, space) is None
    assert past.params_of(adam, space) == {"algorithm.optimizer.lr": 0.0005,
                                           "data.meta_batch_size": 4}


# -- the real entry point -------------------------------------------------------------------

def sweep(tmp_path: Path, *overrides: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1",
           "PROJECT_ROOT": str(ROOT), "HYDRA_FULL_ERROR": "1"}
    env.pop("METALEARN_REGISTRY_URL", None)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "hparams_search=maml_sinusoid_optuna",
         f"paths.log_dir={tmp_path}/logs", *TINY, *overrides],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def attempts(tmp_path: Path, study: str) -> list[dict]:
    store = Store(f"sqlite:///{tmp_path}/logs/registry.db")
    try:
        return sorted(store.list_attempts(study=study, with_config=True), key=lambda a: a["id"])
    finally:
        store.close()


def cli(tmp_path: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run([sys.executable, "-m", "metalearn.cli", "--url",
                          f"sqlite:///{tmp_path}/logs/registry.db", *args],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_without_optuna_runs_do_not_warn_and_a_sweep_says_what_to_install(tmp_path):
    """Hydra imports every installed plugin at each run: without the `sweep` extra a plain
    run must not warn that the Optuna sweeper is broken, and a sweep names the extra."""
    (tmp_path / "sitecustomize.py").write_text("import sys\nsys.modules['optuna'] = None\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT / "src")]),
           "PROJECT_ROOT": str(ROOT)}

    def run(*overrides: str, flags: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, str(ROOT / "run.py"), *overrides,
                               f"paths.log_dir={tmp_path}/logs", "registry=off", *flags],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)

    plain = run("experiment=maml_sinusoid", flags=("--cfg", "job"))
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert "optuna" not in plain.stderr.lower()
    swept = run("hparams_search=maml_sinusoid_optuna", *TINY)
    assert swept.returncode != 0
    assert "needs Optuna: pip install 'metalearn-lightning[sweep]'" in swept.stdout + swept.stderr


@pytest.mark.slow
def test_a_study_records_its_trials_resumes_and_learns_from_past_attempts(tmp_path):
    sweep(tmp_path, "hydra.sweeper.n_trials=3")
    first = attempts(tmp_path, "maml_sinusoid")
    assert [(a["trial"], a["status"], a["experiment"]) for a in first] == [
        (0, "completed", "maml_sinusoid"), (1, "completed", "maml_sinusoid"),
        (2, "completed", "maml_sinusoid")]
    assert all(a["config"]["test"] is False for a in first)  # meta-validation only
    storage = f"sqlite:///{tmp_path}/logs/registry.db"
    study = optuna.load_study(study_name="maml_sinusoid", storage=storage)
    values = {t.number: t.value for t in study.trials}
    store = Store(storage)
    for a in first:  # the value told is what the attempt scored at its best validation
        assert values[a["trial"]] == pytest.approx(past.attempt_value(store, a["id"], "val/mse", "min"))
        params = study.trials[a["trial"]].params
        assert a["config"]["algorithm"]["inner_lr"] == pytest.approx(params["algorithm.inner_lr"])
    listed = json.loads(cli(tmp_path, "runs", "list", "--study", "maml_sinusoid", "--json"))
    assert [r["trial"] for r in listed] == [0, 1, 2]
    (results,) = (tmp_path / "logs").glob("maml_sinusoid/multiruns/*/optimization_results.yaml")
    best = yaml.safe_load(results.read_text())
    assert best["best_value"] == pytest.approx(min(values.values()))

    # Resumed with a larger budget: only the missing trial runs.
    sweep(tmp_path, "hydra.sweeper.n_trials=4")
    assert [a["trial"] for a in attempts(tmp_path, "maml_sinusoid")] == [0, 1, 2, 3]

    # A new study warm-started from the registry: the two best attempts come first, and as their
    # configs are the trials' configs, their values are taken instead of training again.
    proc = sweep(tmp_path, "hydra.sweeper.n_trials=2", "hydra.sweeper.study_name=again",
                 "hydra.sweeper.warm_start=2")
    assert attempts(tmp_path, "again") == []  # nothing trained
    again = optuna.load_study(study_name="again", storage=storage)
    ranked = sorted(past.finished(store, "maml_sinusoid", "val/mse", "min"), key=lambda p: p[1])
    assert [t.user_attrs["reused_attempt"] for t in again.trials] == [a["id"] for a, _ in ranked[:2]]
    assert [t.value for t in again.trials] == pytest.approx([v for _, v in ranked[:2]])
    assert "reused" in proc.stdout + proc.stderr
    store.close()


@pytest.mark.slow
def test_a_trial_left_running_is_run_again_on_resume(tmp_path):
    storage = f"sqlite:///{tmp_path}/logs/registry.db"
    Store(storage).close()
    study = optuna.create_study(study_name="maml_sinusoid", storage=storage, direction="minimize")
    study.enqueue_trial({"algorithm.inner_lr": 0.02, "algorithm.inner_steps": 2,
                         "algorithm.optimizer.lr": 0.001})
    crashed = study.ask({"algorithm.inner_lr": FloatDistribution(0.001, 0.1, log=True),
                         "algorithm.inner_steps": IntDistribution(1, 3),
                         "algorithm.optimizer.lr": FloatDistribution(0.0001, 0.01, log=True)})
    sweep(tmp_path, "hydra.sweeper.n_trials=2")
    study = optuna.load_study(study_name="maml_sinusoid", storage=storage)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE"]  # the crashed trial failed, its parameters ran again
    assert study.trials[1].params == crashed.params
    (ran,) = attempts(tmp_path, "maml_sinusoid")
    assert ran["trial"] == 1 and ran["config"]["algorithm"]["inner_steps"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["joblib", "submitit_local"])
def test_trials_run_in_parallel_under_the_launcher_plugins(tmp_path, launcher):
    extra = (["hydra.launcher.n_jobs=2"] if launcher == "joblib"
             else ["hydra.launcher.timeout_min=10", "hydra.launcher.cpus_per_task=1"])
    sweep(tmp_path, f"hydra/launcher={launcher}", "hydra.sweeper.n_jobs=2",
          "hydra.sweeper.n_trials=2", *extra)
    ran = attempts(tmp_path, "maml_sinusoid")
    assert sorted(a["trial"] for a in ran) == [0, 1]
    assert len({a["pid"] for a in ran}) == 2  # two processes
    assert all(a["status"] == "completed" for a in ran)


def test_a_sweep_without_a_search_space_is_refused_before_any_trial(tmp_path):
    proc = sweep(tmp_path, "~hydra.sweeper.params", check=False)
    assert proc.returncode != 0
    assert "hydra.sweeper.params: nothing to search" in proc.stdout + proc.stderr
    assert attempts(tmp_path, "maml_sinusoid") == []


def test_warm_start_leaves_debug_runs_out(tmp_path):
    """A debug=fast smoke run is no starting point for a study, however it scored."""
    store = Store(f"sqlite:///{tmp_path / 'registry.db'}")
    ids = {}
    for name, overrides, value in (("real", ["experiment=maml_sinusoid"], 0.5),
                                   ("smoke", ["experiment=maml_sinusoid", "debug=fast"], 0.1)):
        ids[name] = store.create_attempt(name=name, experiment="maml_sinusoid", algorithm="maml",
                                         overrides=overrides, config={"seed": 1})
        store.add_metrics(ids[name], [{"name": "val/mse", "step": 1, "value": value, "time": 0.0}])
        store.set_status(ids[name], "completed")
    ranked = past.finished(store, "maml_sinusoid", "val/mse", "min")
    assert [a["id"] for a, _ in ranked] == [ids["real"]]

