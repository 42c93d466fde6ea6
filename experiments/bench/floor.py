"""The floor: the same meta-step written as a minimal plain-PyTorch loop (no Lightning).

Fast weights through `torch.func.functional_call`, gradients with `torch.autograd.grad`,
scoring forwards under `no_grad`, scores kept as tensors. It computes everything metalearn's
step computes and logs (query loss and accuracy after adapting, the first support loss, and
before adapting on the steps whose scores Lightning writes, as metalearn), so a ratio against
it is the cost of the framework, not of different work; `pre_scores="every step"` and
`"never"` score before adapting on every step or none, to show what that forward costs.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench.handloop import HandLoop, mean_over_tasks, query_logits, task_scores
from bench.same_math import Params
from metalearn.data.episode import Episode


class FloorReptile(HandLoop):
    """Reptile: meta-gradient = meta-weights - adapted weights, averaged over the tasks."""

    name = "hand-written"

    def meta_gradient(self, episodes: list[Episode], params: Params):
        top = self.model.top
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        per_task = []
        for ep in episodes:
            xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
            fast = {n: p.detach().requires_grad_(True) for n, p in params.items()}
            first = None
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(functional_call(top, fast, (xs,)), ep.support_y)
                first = loss.detach() if first is None else first
                g = torch.autograd.grad(loss, list(fast.values()))
                with torch.no_grad():
                    fast = {n: (w - self.inner_lr * gi).requires_grad_(True)
                            for (n, w), gi in zip(fast.items(), g, strict=False)}
            with torch.no_grad():
                logits = query_logits(top, fast, xs, xq)
                for n, p in params.items():
                    grads[n] += (p.detach() - fast[n]) / len(episodes)
            pre = self.outputs_before_adapting(top, params, xs, xq) if self.score_before_adapting else None
            per_task.append(task_scores(logits, pre, ep.query_y, first))
        return grads, mean_over_tasks(per_task)


class FloorMAML(HandLoop):
    """MAML (second order) or FOMAML: the query-loss gradient through / at the adapted weights."""

    name = "hand-written"

    def __init__(self, *args, first_order: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.first_order = first_order

    def meta_gradient(self, episodes: list[Episode], params: Params):
        top, fo = self.model.top, self.first_order
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        per_task = []
        for ep in episodes:
            xs, xq = self.model.features(ep.support_x), self.model.features(ep.query_x)
            pre = self.outputs_before_adapting(top, params, xs, xq) if self.score_before_adapting else None
            fast = {n: p.detach().requires_grad_(True) for n, p in params.items()} if fo else dict(params)
            first = None
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(functional_call(top, fast, (xs,)), ep.support_y)
                first = loss.detach() if first is None else first
                g = torch.autograd.grad(loss, list(fast.values()), create_graph=not fo)
                fast = {n: w - self.inner_lr * gi for (n, w), gi in zip(fast.items(), g, strict=False)}
                if fo:
                    fast = {n: w.detach().requires_grad_(True) for n, w in fast.items()}
            logits = query_logits(top, fast, xs, xq)
            q = F.cross_entropy(logits, ep.query_y)
            wrt = fast if fo else params
            for n, gi in zip(wrt, torch.autograd.grad(q, list(wrt.values())), strict=False):
                grads[n] += gi / len(episodes)
            per_task.append(task_scores(logits.detach(), pre, ep.query_y, first))
        return grads, mean_over_tasks(per_task)
