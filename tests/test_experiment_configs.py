"""Every experiment composes the config it composed before its settings were written once.

The fixture holds, for every `experiment=<name>` (alone and with `debug=fast`), for the documented
commands that swap a group under an experiment, and for every `hparams_search=`, the config
Hydra composes with every interpolation resolved, the group choices it made (the registry
records `algorithm` from them; `debug=fast` picks its per-group parts by them) and, for a sweep,
its sweeper. Paths are composed under fixed placeholders. A difference fails the test unless
DELIBERATE lists it with the reason. Regenerate the fixture only when every difference is meant:

    PYTHONPATH=src python tests/test_experiment_configs.py --record
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hydra.core.hydra_config import HydraConfig
from omegaconf import OmegaConf, open_dict

from metalearn.conf import CONFIG_DIR, compose_train

FIXTURE = Path(__file__).with_name("fixtures") / "experiment_configs.json"
# Fixed places instead of this machine's, so the fixture is the same everywhere.
ENV = {"PROJECT_ROOT": "/project", "METALEARN_DATA": "/data"}
UNSET = ("METALEARN_REGISTRY_URL", "METALEARN_CONFIG_DIR")
OUTPUT_DIR = "/output"
# Commands of the README, docs/ and the records that swap a group under an experiment.
DOCUMENTED = (
    "experiment=reptile_amazon algorithm=reptile_adam data.meta_batch_size=4",
    "experiment=reptile_arsc algorithm=reptile_adam algorithm.train_on_query=true",
    "experiment=reptile_amazon algorithm=reptile",
    "experiment=maml_sinusoid algorithm=reptile",
    "experiment=maml_omniglot algorithm=reptile",
    "experiment=maml_sinusoid algorithm=protonet",
    "experiment=reptile_intents algorithm=protonet data.shots=2",
    "experiment=reptile_amazon benchmark=amazon_shuffled",
)
# What is meant to differ from the fixture: (command pattern, key pattern) -> why. Patterns are
# fnmatch globs; keys are dotted, under `config.`, `choices.` or `sweeper.`.
DELIBERATE: dict[tuple[str, str], str] = {
    ("*", "choices.benchmark"): "an experiment names its benchmark (conf/benchmark/: the data, the model "
                                "and what every algorithm takes on it), a group choice Hydra records",
    ("*", "config.tags"): "tags name the benchmark alone, written once in its file; the experiment and the "
                          "algorithm are recorded beside them (task_name, the registry's columns)",
    ("*", "config.threads"): "new setting (another change): torch threads per training process",
    ("*", "config.callbacks.rich_progress_bar.*"): "a rich bar on a terminal, plain log lines every "
                                                   "every_seconds elsewhere (metalearn.progress)",
    ("*", "config.algorithm.eval_score_steps"): "new setting, null (off): the meta-test's scores after "
                                                "several step counts (metalearn.algorithms.step_scores)",
    ("*", "config.callbacks.model_checkpoint._target_"): "how not what: Lightning's ModelCheckpoint, keeping "
                                                         "the best score when a run resumes into a new "
                                                         "folder (metalearn.checkpointing)",
    ("*", "config.model.cache_trunk"): "new setting, how not what: the frozen layers' outputs on the "
                                       "meta-validation episodes kept for the next check (bit for bit)",
    **dict.fromkeys([("experiment=*_hf_text", "config.data.val_episodes"),
                     ("experiment=reptile_intents*", "config.data.val_episodes")],
                    "data=hf_text validates on 50 episodes per family, not 2: the best checkpoint is "
                    "chosen on them (conf/data/hf_text.yaml: the interval each gives)"),
    **dict.fromkeys([("experiment=fomaml_omniglot", "config.algorithm.inner_lr"),
                     ("experiment=fomaml_omniglot debug=fast", "config.algorithm.inner_lr")],
                    "first-order MAML on Omniglot steps 0.1, not MAML's 0.4, where its meta-gradient "
                    "points the wrong way (experiments/README.md, First-order MAML on Omniglot)"),
}


def commands() -> list[str]:
    """The command lines the fixture holds, from the experiment and hparams_search folders."""
    experiments = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
    searches = sorted(p.stem for p in (CONFIG_DIR / "hparams_search").glob("*.yaml"))
    return [*(f"experiment={e}" for e in experiments),
            *(f"experiment={e} debug=fast" for e in experiments),
            *DOCUMENTED,
            *(f"hparams_search={s}" for s in searches)]


def resolved(command: str) -> dict[str, Any]:
    """The config `command` composes, resolved, with its group choices (and a sweep's sweeper).

    Composed under ENV's places (the caller sets them), with Hydra's runtime config set as a
    run sets it, so `${hydra:...}` resolves as in a run."""
    cfg = compose_train(command.split(), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = OUTPUT_DIR
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    out = OmegaConf.to_container(cfg, resolve=True)
    hydra = out.pop("hydra")
    found = {"config": out,
             "choices": {k: v for k, v in hydra["runtime"]["choices"].items() if not k.startswith("hydra")}}
    if "hparams_search=" in command:
        found["sweeper"] = hydra["sweeper"]
    return found


def leaves(node: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, value) of every leaf; a list is one leaf."""
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from leaves(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, node


def differences(before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """{dotted key: what changed} between two resolved configs."""
    old, new = dict(leaves(before)), dict(leaves(after))
    out = {}
    for key in sorted(old.keys() | new.keys()):
        if key not in new:
            out[key] = f"removed (was {old[key]!r})"
        elif key not in old:
            out[key] = f"added: {new[key]!r}"
        elif old[key] != new[key] or type(old[key]) is not type(new[key]):
            out[key] = f"{old[key]!r} -> {new[key]!r}"
    return out


def deliberate(command: str, key: str) -> bool:
    return any(fnmatch.fnmatchcase(command, c) and fnmatch.fnmatchcase(key, k) for c, k in DELIBERATE)


@pytest.fixture
def places(monkeypatch):
    """ENV's places instead of this machine's; Hydra's runtime config unset afterwards."""
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET:
        monkeypatch.delenv(name, raising=False)
    yield
    HydraConfig.instance().cfg = None


def test_every_experiment_composes_what_it_composed_apart_from_the_deliberate(places):
    """One test for all the checks on the composed configs, so the 75 compositions run once."""
    recorded = json.loads(FIXTURE.read_text())
    composed = {command: resolved(command) for command in recorded}
    found = {c: differences(recorded[c], composed[c]) for c in recorded}
    unexpected = {c: {k: v for k, v in d.items() if not deliberate(c, k)} for c, d in found.items()}
    unexpected = {c: d for c, d in unexpected.items() if d}
    assert not unexpected, json.dumps(unexpected, indent=1)
    # what the tags entry of DELIBERATE means, and no other tags
    for command, got in composed.items():
        if command.startswith("experiment="):
            assert got["config"]["tags"] == [got["choices"]["benchmark"]], command
    # an entry of DELIBERATE that no command shows is stale
    seen = {(c, k) for c, d in found.items() for k in d}
    stale = [f"{c} :: {k}" for c, k in DELIBERATE
             if not any(fnmatch.fnmatchcase(sc, c) and fnmatch.fnmatchcase(sk, k) for sc, sk in seen)]
    assert not stale, stale


def test_the_fixture_covers_every_experiment_and_sweep():
    """Every experiment and sweep file is composed here; none of the recorded is gone. A new
    one is recorded with `python tests/test_experiment_configs.py --record "experiment=NAME"
    "experiment=NAME debug=fast"`."""
    recorded = json.loads(FIXTURE.read_text())
    assert sorted(recorded) == sorted(commands())


def test_a_changed_value_is_a_difference():
    before = {"config": {"algorithm": {"inner_lr": 0.4, "steps": 1}, "tags": ["a"]}}
    after = {"config": {"algorithm": {"inner_lr": 0.1, "steps": 1.0}, "tags": ["a", "b"], "new": 1}}
    assert differences(before, after) == {
        "config.algorithm.inner_lr": "0.4 -> 0.1", "config.algorithm.steps": "1 -> 1.0",
        "config.new": "added: 1", "config.tags": "['a'] -> ['a', 'b']"}


def main() -> None:
    parser = argparse.ArgumentParser(description=f"record resolved configs in {FIXTURE}")
    parser.add_argument("--record", action="store_true", help="write the fixture (else print)")
    parser.add_argument("commands", nargs="*", help="only these (the others' records stay); default: all")
    args = parser.parse_args()
    os.environ.update(ENV)
    for name in UNSET:
        os.environ.pop(name, None)
    found = {command: resolved(command) for command in args.commands or commands()}
    if args.record:
        kept = json.loads(FIXTURE.read_text()) if args.commands and FIXTURE.exists() else {}
        FIXTURE.write_text(json.dumps({**kept, **found}, indent=1, sort_keys=True) + "\n")
    else:
        print(json.dumps(found, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
