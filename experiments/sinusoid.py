"""Sinusoid results (Finn et al. 2017, section 5.1): MSE after 0, 1 and 10 inner steps, and a figure.

    python experiments/sinusoid.py            # score, record the results, write sinusoid.png
    metalearn runs export --experiment maml_sinusoid ...   # then commit the records
    python experiments/tables.py --write      # and the table in experiments/README.md

Takes the newest completed (non-debug) attempt of each sinusoid experiment from the run
registry, rebuilds its network from the recorded config and checkpoint, and scores it on the
same 100 held-out tasks (`data.eval_seed + 1`, the meta-test's tasks) at K = 5, 10 and 20
support points: the MSE over 100 query points per task after 0, 1 and 10 SGD steps on the
support points with the run's own test-time step size, as mean and 95% interval over the tasks.
The scores become test results of that attempt (group `K=<shots>`, metric `mse@<steps>`), so
its exported record carries them and the table is built from records; the figure is drawn
from the checkpoints.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import hydra
import matplotlib

matplotlib.use("Agg")  # headless: the figure is written to a file
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from tables import from_registry, sinusoid_records, steps_table  # noqa: E402  (experiments/, beside this file)

from metalearn.intervals import mean_ci95  # noqa: E402
from metalearn.registry.engine import default_url  # noqa: E402
from metalearn.registry.store import Store  # noqa: E402

HERE = Path(__file__).resolve().parent
FIGURE = HERE / "sinusoid.png"
EXPERIMENTS = ("maml_sinusoid", "fomaml_sinusoid", "reptile_sinusoid", "finetune_sinusoid")
SHOTS, STEPS, TASKS = (5, 10, 20), (0, 1, 10), 100


def newest_attempts(store: Store) -> dict[str, dict]:
    """The newest completed attempt with a checkpoint of each experiment, debug runs left out."""
    found = {}
    for experiment in EXPERIMENTS:
        for a in store.list_attempts(status="completed", experiment=experiment, with_config=True):
            if a["ckpt_path"] and not any(o.startswith("debug=") for o in a["overrides"] or []):
                found[experiment] = a
                break
    return found


def learner_of(attempt: dict):
    """The attempt's algorithm with its trained weights, rebuilt from the recorded config."""
    config = attempt["config"]
    objective = hydra.utils.instantiate(config["objective"])
    learner = hydra.utils.instantiate(config["algorithm"], model=hydra.utils.instantiate(config["model"]),
                                      objective=objective)
    state = torch.load(attempt["ckpt_path"], map_location="cpu", weights_only=False)["state_dict"]
    learner.load_state_dict(state)
    return learner.eval()


def held_out_tasks(attempt: dict, shots: int, tasks: int = TASKS) -> list:
    """The meta-test's fixed tasks with `shots` support points (the same curves at every K)."""
    data = hydra.utils.instantiate(attempt["config"]["data"], shots=shots, queries=100,
                                   test_episodes=tasks)
    data.setup("test")
    return [(spec, data.build(spec)) for spec in data.test_specs]


def adapted(learner, ep, steps: int) -> dict:
    """Fast weights after `steps` SGD steps on the episode's support points, of the run's
    test-time step size (`eval_inner_lr` where set, as its meta-test adapts)."""
    params = learner.meta_parameters()
    if steps == 0:
        return params
    adapt = learner.adapt_support if getattr(learner, "eval_inner_lr", None) is None else learner.adapt_at_eval_rate
    with torch.enable_grad():
        return adapt(params, ep.support_x, ep.support_y, steps)[0]


def scores(learners: dict, attempts: dict, tasks: int = TASKS) -> dict[str, list[dict]]:
    """Per experiment: a test-result row per K and step count, MSE ± 95% interval over tasks."""
    out: dict[str, list[dict]] = {}
    for experiment, learner in learners.items():
        rows = out[experiment] = []
        metric = learner.objective.metric
        for shots in SHOTS:
            episodes = [ep for _, ep in held_out_tasks(attempts[experiment], shots, tasks)]
            for steps in STEPS:
                values = [learner.objective.score(learner.predict(
                    adapted(learner, ep, steps), ep.support_x, ep.query_x).detach(),
                    ep.query_y).item() for ep in episodes]
                mean, ci = mean_ci95(values)
                rows.append({"group": f"K={shots}", "metric": f"{metric}@{steps}", "value": mean,
                             "ci95": ci, "episodes": len(episodes), "shots": shots,
                             "queries": episodes[0].queries})
    return out


def figure(learners: dict, attempts: dict, path: Path, tasks: int = 3) -> None:
    """A row per experiment, a column per held-out task (K = 10): the true curve, the support
    points, the prediction before adapting and after 1 and 10 steps."""
    fig, axes = plt.subplots(len(learners), tasks, figsize=(4 * tasks, 2.8 * len(learners)),
                             squeeze=False, sharex=True)
    grid = torch.linspace(-5, 5, 200).unsqueeze(1)  # [200, 1]
    for row, (experiment, learner) in enumerate(learners.items()):
        for col, (spec, ep) in enumerate(held_out_tasks(attempts[experiment], 10, tasks)):
            ax = axes[row][col]
            ax.plot(grid, spec.targets(grid), color="black", lw=2, label="true curve")
            ax.scatter(ep.support_x, ep.support_y, color="black", marker="^", zorder=3,
                       label="K = 10 points")
            for steps, style in zip(STEPS, (":", "--", "-"), strict=False):
                pred = learner.predict(adapted(learner, ep, steps), ep.support_x, grid).detach()
                label = "before adapting" if steps == 0 else f"after {steps} step{'s' * (steps > 1)}"
                ax.plot(grid, pred, style, color="tab:red", label=label)
            trained = attempts[experiment]["config"]
            budget = f"{trained['trainer']['max_steps']:,} × {trained['data']['meta_batch_size']} tasks"
            ax.set_title(f"{experiment} ({budget}): A={spec.amplitude:.2f}, phase={spec.phase:.2f}",
                         fontsize="small")
    axes[0][0].legend(fontsize="x-small", loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default=None, help="registry URL (default: the project's SQLite)")
    parser.add_argument("--figure", type=Path, default=FIGURE, help="where to write the figure")
    parser.add_argument("--tasks", type=int, default=TASKS, help="held-out tasks to score")
    args = parser.parse_args()
    torch.manual_seed(0)
    url = args.url or default_url()
    store = Store(url)
    attempts = newest_attempts(store)
    if not attempts:
        raise SystemExit(f"no completed sinusoid attempts in the registry; run "
                         f"`python run.py experiment=maml_sinusoid` ({', '.join(EXPERIMENTS)})")
    learners = {e: learner_of(a) for e, a in attempts.items()}
    for experiment, rows in scores(learners, attempts, args.tasks).items():
        store.put_test_results(attempts[experiment]["id"], rows)
    figure(learners, attempts, args.figure)
    print(steps_table(sinusoid_records(from_registry(url))))
    print(f"recorded as test results of attempts {sorted(a['id'] for a in attempts.values())}; "
          f"export them with `metalearn runs export ID ...`")


if __name__ == "__main__":
    main()
