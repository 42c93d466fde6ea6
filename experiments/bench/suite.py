"""What the bench measures, in quick and full mode, built from the project's experiment configs.

Contests (same model, episodes, seeds and gradient steps for every implementation):
  reptile-text   Reptile on the text model (experiment=reptile_amazon): metalearn, the
                 hand-written floor, the write-up's way.
  maml-conv4     second-order MAML on Conv4 (experiment=maml_omniglot): metalearn, the floor
                 (and its variants scoring before adapting on every step and on none), higher,
                 TorchOpt x2.
  fomaml-conv4   the same for FOMAML (experiment=fomaml_omniglot).
  vmap-*         MAML and FOMAML on Conv4 and on the sinusoid MLP at 16 tasks per meta-batch:
                 metalearn's task loop against algorithm.vmap_tasks=true.
Then peak memory per algorithm (bench.memory) and inner-step GFLOP/s (bench.flops).
"""
from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import pytorch_lightning as pl
from omegaconf import OmegaConf

from bench import config
from bench.device import to
from bench.floor import FloorMAML, FloorReptile
from bench.flops import count_flops, inner_step_gflops, matmul_gflops
from bench.handloop import WrittenSteps
from bench.libraries import HigherMAML, TorchOptFunctionalMAML, TorchOptMAML
from bench.memory import MemoryProbe, StepMemory, mark_tasks
from bench.metalearn_fit import MetalearnFit, initial_state
from bench.seed_way import SeedWayReptile
from bench.sources import DataModuleSource, RandomSource, ReviewSource
from bench.timing import ContestResult, run_contest
from metalearn.train import build

log = logging.getLogger("bench")
SEED_PAD = 256  # the write-up's fixed padding length (quick: 64)
# From step 1 on (bench.same_math): correct second-order implementations drift apart on Conv4
# (measured 3e-3 of the gradient's norm at step 2); a different algorithm is caught at step 0,
# where the tolerance is 1e-4 elementwise, and this catches a run that goes astray later.
DRIFT_CONV = 0.1
MEMORY_ALGORITHMS = ("reptile", "maml", "fomaml", "anil", "protonet")


@dataclass(frozen=True)
class Plan:
    """Sizes of one mode. Quick: tiny models, for development and the test; full: the real ones."""

    quick: bool
    text_overrides: tuple[str, ...]
    pad_to: int  # the seed's fixed padding, also the truncation length on both sides
    conv_overrides: tuple[str, ...]
    text_steps: int
    conv_steps: int
    text_timed_from: int  # steps before this one are warm-up, not timed
    conv_timed_from: int
    text_rounds: int
    conv_rounds: int
    memory_meta_batch: int
    vmap_tasks: int  # tasks per meta-batch in the vmap contests
    overhead_steps: int
    flop_repeats: int
    matmul_n: int
    device: str = "cpu"
    overrides: tuple[str, ...] = ()  # Hydra overrides for every experiment (run.py --set)

    @property
    def trainer(self) -> tuple[str, ...]:
        """The trainer config every metalearn run of this plan takes (trainer=gpu on a GPU)."""
        return ("trainer=gpu",) if self.device.startswith("cuda") else ()

    def experiment(self, name: str, *overrides: str):
        """`config.experiment` on this plan's device, with those of the plan's own overrides
        whose key the experiment has (model.pretrained reaches the text model, not Conv4)."""
        cfg = config.experiment(name, *overrides, *self.trainer)
        extra = [o for o in self.overrides
                 if OmegaConf.select(cfg, o.split("=", 1)[0]) is not None]
        return config.experiment(name, *overrides, *self.trainer, *extra) if extra else cfg

    @staticmethod
    def make(quick: bool, device: str = "cpu", overrides: tuple[str, ...] = ()) -> Plan:
        # The text contests run plain Reptile (an SGD outer step), the seed project's algorithm,
        # whatever optimizer reptile_amazon's default takes.
        if quick:  # a tiny random BERT; a 16-channel Conv4 with 5 query images per class
            return Plan(True, ("algorithm=reptile", "model=tiny_bert"), 64, ("model.hidden=16", "data.queries=5"),
                        text_steps=3, conv_steps=3, text_timed_from=1, conv_timed_from=1,
                        text_rounds=1, conv_rounds=1,
                        memory_meta_batch=4, vmap_tasks=4, overhead_steps=10, flop_repeats=5, matmul_n=512,
                        device=device, overrides=overrides)
        if device.startswith("cuda"):  # steps take milliseconds: warm-up steps, more of them
            return Plan(False, ("algorithm=reptile",), SEED_PAD, (), text_steps=6, conv_steps=3,
                        text_timed_from=2, conv_timed_from=1, text_rounds=3, conv_rounds=9,
                        memory_meta_batch=4, vmap_tasks=16, overhead_steps=40, flop_repeats=20,
                        matmul_n=4096, device=device, overrides=overrides)
        # A MiniLM meta-step takes tens of CPU seconds: one timed step per round, no warm-up
        # step (first-call costs are milliseconds against that).
        return Plan(False, ("algorithm=reptile",), SEED_PAD, (), text_steps=1, conv_steps=3, text_timed_from=0,
                    conv_timed_from=1, text_rounds=2, conv_rounds=3,
                    memory_meta_batch=4, vmap_tasks=16, overhead_steps=40, flop_repeats=10,
                    matmul_n=1024, device=device, overrides=overrides)


class Sources:
    """Episode sources, built once per data configuration."""

    def __init__(self) -> None:
        self._omniglot: dict[str, object] = {}
        self._reviews: dict[tuple, ReviewSource] = {}

    def omniglot(self, cfg, meta_batch: int | None = None) -> DataModuleSource:
        data = OmegaConf.to_container(cfg.data, resolve=True)
        data.pop("meta_batch_size")
        key = repr(sorted(data.items()))
        if key not in self._omniglot:
            self._omniglot[key] = build(cfg.data)
        return DataModuleSource(self._omniglot[key], meta_batch or cfg.data.meta_batch_size)

    def reviews(self, cfg, tokenizer, steps: int) -> ReviewSource:
        d = cfg.data
        key = (d.path, d.max_length, d.shots, d.queries, d.meta_batch_size, cfg.seed, steps)
        if key not in self._reviews:
            self._reviews[key] = ReviewSource(d.path, list(d.domains), list(d.heldout), tokenizer,
                                              d.max_length, d.shots, d.queries,
                                              d.meta_batch_size, cfg.seed, steps)
        return self._reviews[key]


def learner_for(cfg):
    """The configured model and algorithm, seeded as a run is."""
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build(cfg.model)
    return build(cfg.algorithm, model=model, objective=build(cfg.objective))


def task_loop_flops(learner, floor, init: dict, episodes: list) -> dict[str, float]:
    """GFLOP of one meta-batch's task loop on a step whose scores are written (both sides
    score the query set before adapting): metalearn's `task_gradient` per task, and the
    floor's `meta_gradient`, from the same weights. Equal counts mean metalearn does no
    extra tensor work (its fixed cost is measured by the overhead contest), whatever the
    load does to the timings."""
    learner.model.to(floor.device).load_state_dict(init)
    floor.model.load_state_dict(init)
    episodes = to(episodes, floor.device)

    def metalearn_loop():
        with learner.step_rng(), learner.scoring_before_adapting(True):
            for ep in episodes:
                learner.task_gradient(ep, learner.meta_parameters())

    def floor_loop():
        floor.score_before_adapting, floor.pre_forwards = True, [0]
        floor.meta_gradient(episodes, floor.meta_parameters())

    return {"metalearn": count_flops(metalearn_loop) / 1e9,
            "hand-written": count_flops(floor_loop) / 1e9}


def loop_args(learner, cfg) -> dict:
    """What a hand-written loop takes from the learner and its run's config."""
    return dict(inner_lr=learner.inner_lr, inner_steps=learner.inner_steps,
                optimizer=learner.optimizer_factory, scheduler=learner.scheduler_factory,
                written=WrittenSteps.of(cfg.trainer))


def reptile_text(plan: Plan, sources: Sources) -> tuple[ContestResult, dict]:
    from transformers import AutoTokenizer

    from metalearn.models.pretrained import resolve_pretrained

    # Truncated at the seed's length on both sides, so only the padding differs.
    cfg = plan.experiment("reptile_amazon", *plan.text_overrides, f"data.max_length={plan.pad_to}")
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(cfg.model.pretrained))
    source = sources.reviews(cfg, tokenizer, plan.text_steps)
    learner = learner_for(cfg)
    init = initial_state(learner.model)
    args, kw = (source, init), dict(loop_args(learner, cfg), device=plan.device)
    seed_way = SeedWayReptile(copy.deepcopy(learner.model), *args, **kw,
                              tokenizer=tokenizer, pad_to=plan.pad_to)
    # metalearn with its reviews padded to the longest of each batch: what the length groups save.
    padded_cfg = plan.experiment("reptile_amazon", *plan.text_overrides,
                                 f"data.max_length={plan.pad_to}", "model.skip_padding=false")
    impls = [MetalearnFit(cfg, learner, source, init),
             FloorReptile(copy.deepcopy(learner.model), *args, **kw),
             seed_way,
             SeedWayReptile(copy.deepcopy(learner.model), *args, **kw,
                            tokenizer=tokenizer, pad_to=plan.pad_to, score_every_epoch=True),
             MetalearnFit(padded_cfg, learner_for(padded_cfg), source, init,
                          name="metalearn, padded")]
    info = {"experiment": "reptile_amazon", "overrides": list(plan.text_overrides),
            "model": cfg.model.pretrained + (" (tiny random BERT)" if cfg.model.random_init else ""),
            "trainable_layers": cfg.model.trainable_layers, "meta_batch": source.meta_batch,
            "inner_steps": learner.inner_steps, "shots": cfg.data.shots,
            "queries": cfg.data.queries, **source.mean_tokens()}
    log.info("reptile-text: %s", info)
    # Loose: the seed's padded batches change float summation order, nothing else.
    result = run_contest("reptile-text", impls, plan.text_steps, plan.text_timed_from,
                         plan.text_rounds, rtol=1e-3, atol=1e-5, log=log.info)
    info["seed_way_cpu_ms_per_step"] = {k: 1e3 * v / seed_way.steps_run
                                        for k, v in seed_way.seconds.items()}
    info["task_loop_gflop"] = task_loop_flops(learner, impls[1], init, source.meta_batch_at(0))
    return result, info


def maml_conv4(plan: Plan, sources: Sources, first_order: bool) -> tuple[ContestResult, dict]:
    name = "fomaml" if first_order else "maml"
    cfg = plan.experiment(f"{name}_omniglot", *plan.conv_overrides)
    source = sources.omniglot(cfg)
    learner = learner_for(cfg)
    init = initial_state(learner.model)
    args, kw = (source, init), dict(loop_args(learner, cfg), first_order=first_order, device=plan.device)
    # The floor scores before adapting on metalearn's steps (those written); its two variants
    # on every step and on none price that forward (row i).
    impls = [MetalearnFit(cfg, learner, source, init),
             FloorMAML(copy.deepcopy(learner.model), *args, **kw),
             FloorMAML(copy.deepcopy(learner.model), *args, **kw, pre_scores="every step"),
             FloorMAML(copy.deepcopy(learner.model), *args, **kw, pre_scores="never"),
             HigherMAML(copy.deepcopy(learner.model), *args, **kw),
             TorchOptMAML(copy.deepcopy(learner.model), *args, **kw),
             TorchOptFunctionalMAML(copy.deepcopy(learner.model), *args, **kw)]
    info = {"experiment": f"{name}_omniglot", "overrides": list(plan.conv_overrides),
            "hidden": cfg.model.hidden, "ways": cfg.data.ways, "shots": cfg.data.shots,
            "queries": cfg.data.queries, "meta_batch": source.meta_batch,
            "inner_steps": learner.inner_steps, "steps": plan.conv_steps,
            "timed_from": plan.conv_timed_from, "log_every_n_steps": cfg.trainer.log_every_n_steps}
    log.info("%s-conv4: %s", name, info)
    result = run_contest(f"{name}-conv4", impls, plan.conv_steps, plan.conv_timed_from,
                         plan.conv_rounds, rtol=1e-4, atol=1e-5, drift=DRIFT_CONV,
                         log=log.info)
    info["task_loop_gflop"] = task_loop_flops(learner, impls[1], init, source.meta_batch_at(0))
    return result, info


VMAP_CONTESTS = {"vmap-maml-conv4": "maml_omniglot", "vmap-fomaml-conv4": "fomaml_omniglot",
                 "vmap-maml-sinusoid": "maml_sinusoid", "vmap-fomaml-sinusoid": "fomaml_sinusoid"}


def vmap_tasks(plan: Plan, sources: Sources, name: str) -> tuple[ContestResult, dict]:
    """metalearn's task loop against the same learner with algorithm.vmap_tasks=true, on a
    meta-batch of `plan.vmap_tasks` tasks (the issue's 16)."""
    experiment = VMAP_CONTESTS[name]
    overrides = [*(plan.conv_overrides if "omniglot" in experiment else ()),
                 f"data.meta_batch_size={plan.vmap_tasks}"]
    cfg = plan.experiment(experiment, *overrides)
    cfg_vmap = plan.experiment(experiment, *overrides, "algorithm.vmap_tasks=true")
    source = sources.omniglot(cfg)
    loop = learner_for(cfg)
    init = initial_state(loop.model)
    impls = [MetalearnFit(cfg, loop, source, init),
             MetalearnFit(cfg_vmap, learner_for(cfg_vmap), source, init,
                          name="metalearn, vmap_tasks")]
    # A sinusoid step takes milliseconds: as many steps as the overhead contest, so the timed
    # ones hold Lightning's writes of the training scores (every trainer.log_every_n_steps).
    steps, timed_from = ((plan.conv_steps, plan.conv_timed_from) if "omniglot" in experiment
                         else (plan.overhead_steps, plan.overhead_steps // 4))
    info = {"experiment": experiment, "overrides": overrides, "meta_batch": source.meta_batch,
            "inner_steps": loop.inner_steps, "shots": cfg.data.shots, "queries": cfg.data.queries,
            "steps": steps, "timed_from": timed_from,
            "log_every_n_steps": cfg.trainer.log_every_n_steps}
    log.info("%s: %s", name, info)
    result = run_contest(name, impls, steps, timed_from, plan.conv_rounds,
                         rtol=1e-4, atol=1e-5, drift=DRIFT_CONV, log=log.info)
    return result, info


def overhead(plan: Plan) -> tuple[ContestResult, dict]:
    """FOMAML's settings on a 16-feature linear model: compute is negligible, so the
    difference per step is the fixed cost of the framework's loop and bookkeeping."""
    from torch import nn

    from metalearn.models.split import SplitModel

    cfg = plan.experiment("fomaml_omniglot")
    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    learner = build(cfg.algorithm, model=SplitModel(top=nn.Linear(16, cfg.data.ways)),
                    objective=build(cfg.objective))
    source = RandomSource(16, cfg.data.ways, cfg.data.shots, cfg.data.queries,
                          cfg.data.meta_batch_size)
    init = initial_state(learner.model)
    impls = [MetalearnFit(cfg, learner, source, init),
             FloorMAML(copy.deepcopy(learner.model), source, init, **loop_args(learner, cfg),
                       first_order=True, device=plan.device)]
    info = {"experiment": "fomaml_omniglot", "model": "Linear(16, ways)",
            "meta_batch": source.meta_batch, "inner_steps": learner.inner_steps}
    result = run_contest("overhead-linear", impls, plan.overhead_steps, plan.overhead_steps // 5,
                         plan.conv_rounds, rtol=1e-4, atol=1e-5, drift=1e-3, log=log.debug)
    return result, info


def memory(plan: Plan, sources: Sources) -> dict[str, StepMemory]:
    """One profiled meta-step (the second of a fit, so optimizer state exists) per algorithm."""
    out = {}
    for alg in MEMORY_ALGORITHMS:
        cfg = plan.experiment(f"{alg}_omniglot", *plan.conv_overrides,
                                f"data.meta_batch_size={plan.memory_meta_batch}")
        source = sources.omniglot(cfg)
        learner = learner_for(cfg)
        mark_tasks(learner)
        probe = MemoryProbe(step=1)
        MetalearnFit(cfg, learner, source, initial_state(learner.model)).fit(2, [probe])
        out[alg] = probe.result
        log.info("memory %s: %s", alg, probe.result)
    return out


def flops(plan: Plan, sources: Sources) -> dict[str, dict]:
    """Inner-step GFLOP/s of Conv4 (MAML's settings) and of the text model, and a matmul."""
    import torch
    from transformers import AutoTokenizer

    from metalearn.models.pretrained import resolve_pretrained

    dev = plan.device
    out = {"matmul": matmul_gflops(plan.matmul_n, plan.flop_repeats, dev)}
    if dev.startswith("cuda"):  # what the tensor cores reach, for information
        out["matmul bf16"] = matmul_gflops(plan.matmul_n, plan.flop_repeats, dev, torch.bfloat16)
    cfg = plan.experiment("maml_omniglot", *plan.conv_overrides)
    learner = learner_for(cfg)
    ep = sources.omniglot(cfg).meta_batch_at(0)[0]
    out["conv4 inner step"] = inner_step_gflops(learner, ep, plan.flop_repeats, dev)
    cfg = plan.experiment("reptile_amazon", *plan.text_overrides, f"data.max_length={plan.pad_to}")
    tokenizer = AutoTokenizer.from_pretrained(resolve_pretrained(cfg.model.pretrained))
    learner = learner_for(cfg)
    ep = sources.reviews(cfg, tokenizer, plan.text_steps).meta_batch_at(0)[0]
    out["text inner step"] = inner_step_gflops(learner, ep, plan.flop_repeats, dev)
    out["text inner step"]["tokens"] = int(ep.support_x["attention_mask"].numel())
    for k, v in out.items():
        log.info("flops %s: %s", k, v)
    return out
