"""First-order MAML on Omniglot: metalearn against `higher`'s first-order MAML for a few hundred
meta-steps, from the same initial weights on the same episodes (fomaml_omniglot's settings).

    python experiments/fomaml/against_higher.py --steps 300

Both implementations run the whole trajectory on their own (no resynchronising), so rounding
differences grow with the steps (experiments/bench/same_math.py measures how fast); what is
compared is the course of training: the query loss after adapting, the query loss before
adapting, and the accuracies, logged on the same steps. Writes a JSON file beside this script
(`against_higher.json`) that experiments/fomaml/figures.py draws.
"""
from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path[:] = [str(ROOT / "src"), str(ROOT / "experiments")] + sys.path

log = logging.getLogger("against_higher")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="Hydra overrides")
    p.add_argument("--out", type=Path, default=HERE / "against_higher.json")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")

    import torch
    from bench import config
    from bench.libraries import HigherMAML
    from bench.metalearn_fit import MetalearnFit, initial_state
    from bench.suite import Sources, learner_for, loop_args

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    # Scores (before adapting too) written on every step, by both implementations.
    cfg = config.experiment("fomaml_omniglot", "trainer.log_every_n_steps=1", *args.set)
    source = Sources().omniglot(cfg)
    learner = learner_for(cfg)
    init = initial_state(learner.model)
    kw = dict(loop_args(learner, cfg), first_order=True, device="cpu")
    impls = {"metalearn": MetalearnFit(cfg, learner, source, init),
             "higher": HigherMAML(copy.deepcopy(learner.model), source, init, **kw)}
    out = {"experiment": "fomaml_omniglot", "overrides": args.set, "steps": args.steps,
           "meta_batch": source.meta_batch, "inner_lr": learner.inner_lr,
           "inner_steps": learner.inner_steps, "curves": {}, "seconds": {}}
    for name, impl in impls.items():
        started = time.perf_counter()
        trace, _timed = impl.run(args.steps, 0)
        out["seconds"][name] = round(time.perf_counter() - started, 1)
        out["curves"][name] = trace.scores
        last = trace.scores[-1]
        log.info("%s: %d steps in %.0f s; last step %s", name, args.steps, out["seconds"][name],
                 {k: round(v, 4) for k, v in last.items()})
    args.out.write_text(json.dumps(out, indent=1))
    log.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
