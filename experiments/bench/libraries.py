"""MAML and FOMAML written with `higher` and with TorchOpt, as their own examples write them.

higher: `innerloop_ctx` over the model with an SGD inner optimizer (`track_higher_grads`
off for first order, whose gradient is then taken at the fast weights). TorchOpt: the
object-oriented `MetaSGD` with `extract_state_dict` / `recover_state_dict` between tasks (its
MAML Omniglot example; `stop_gradient` after each inner step for first order), and its
functional `sgd` transformation with `apply_updates` over a parameter tuple.

Each computes what metalearn's step computes on the same model (the before-adapting query
forward on the steps whose scores Lightning writes, as metalearn); only the differentiable
inner loop is the library's.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.func import functional_call

from bench.handloop import HandLoop, mean_over_tasks, query_logits, task_scores
from bench.same_math import Params
from metalearn.data.episode import Episode
from metalearn.models.norm import has_episode_norm, support_statistics


def _module_query_logits(net: torch.nn.Module, xs: torch.Tensor, xq: torch.Tensor) -> torch.Tensor:
    """`net(xq)` with support-only batch statistics, for a module carrying its own weights."""
    if not has_episode_norm(net):
        return net(xq)
    n = len(xs)
    with support_statistics(net, n):
        return net(torch.cat([xs, xq]))[n:]


class _LibraryMAML(HandLoop):
    def __init__(self, *args, first_order: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.first_order = first_order


class HigherMAML(_LibraryMAML):
    name = "higher"

    def meta_gradient(self, episodes: list[Episode], params: Params):
        import higher

        top, fo, b = self.model.top, self.first_order, len(episodes)
        names = list(params)
        for p in params.values():
            p.grad = None
        inner = torch.optim.SGD(list(params.values()), lr=self.inner_lr)
        per_task = []
        for ep in episodes:
            xs, xq, ys = ep.support_x, ep.query_x, ep.support_y
            pre = self.outputs_before_adapting(top, params, xs, xq) if self.score_before_adapting else None
            with higher.innerloop_ctx(top, inner, copy_initial_weights=False,
                                      track_higher_grads=not fo) as (fnet, diffopt):
                first = None
                for _ in range(self.inner_steps):
                    loss = F.cross_entropy(fnet(xs), ys)
                    first = loss.detach() if first is None else first
                    diffopt.step(loss)
                logits = _module_query_logits(fnet, xs, xq)
                q = F.cross_entropy(logits, ep.query_y)
                if fo:  # the gradient at the (detached) fast weights, into the meta-weights
                    for p, g in zip(params.values(), torch.autograd.grad(q, list(fnet.parameters())), strict=False):
                        p.grad = g / b if p.grad is None else p.grad + g / b
                else:
                    (q / b).backward()
            per_task.append(task_scores(logits.detach(), pre, ep.query_y, first))
        grads = {n: params[n].grad for n in names}
        return grads, mean_over_tasks(per_task)


class TorchOptMAML(_LibraryMAML):
    name = "TorchOpt (MetaSGD)"

    def meta_gradient(self, episodes: list[Episode], params: Params):
        import torchopt

        top, fo, b = self.model.top, self.first_order, len(episodes)
        names = list(params)
        for p in params.values():
            p.grad = None
        inner = torchopt.MetaSGD(top, lr=self.inner_lr)
        net_state = torchopt.extract_state_dict(top, by="reference", detach_buffers=True)
        opt_state = torchopt.extract_state_dict(inner, by="reference")
        per_task = []
        for ep in episodes:
            xs, xq, ys = ep.support_x, ep.query_x, ep.support_y
            pre = self.outputs_before_adapting(top, params, xs, xq) if self.score_before_adapting else None
            first = None
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(top(xs), ys)
                first = loss.detach() if first is None else first
                inner.step(loss)
                if fo:
                    torchopt.stop_gradient(top)
                    torchopt.stop_gradient(inner)
            logits = _module_query_logits(top, xs, xq)
            q = F.cross_entropy(logits, ep.query_y)
            if fo:
                fast = [dict(top.named_parameters())[n] for n in names]
                for p, g in zip(params.values(), torch.autograd.grad(q, fast), strict=False):
                    p.grad = g / b if p.grad is None else p.grad + g / b
            else:
                (q / b).backward()
            torchopt.recover_state_dict(top, net_state)
            torchopt.recover_state_dict(inner, opt_state)
            per_task.append(task_scores(logits.detach(), pre, ep.query_y, first))
        grads = {n: params[n].grad for n in names}
        return grads, mean_over_tasks(per_task)


class TorchOptFunctionalMAML(_LibraryMAML):
    name = "TorchOpt (functional)"

    def meta_gradient(self, episodes: list[Episode], params: Params):
        import torchopt

        top, fo = self.model.top, self.first_order
        names = list(params)
        opt = torchopt.sgd(lr=self.inner_lr)
        grads = {n: torch.zeros_like(p) for n, p in params.items()}
        per_task = []
        for ep in episodes:
            xs, xq, ys = ep.support_x, ep.query_x, ep.support_y
            pre = self.outputs_before_adapting(top, params, xs, xq) if self.score_before_adapting else None
            fast = tuple(p.detach().requires_grad_(True) if fo else p for p in params.values())
            state = opt.init(fast)
            first = None
            for _ in range(self.inner_steps):
                loss = F.cross_entropy(functional_call(top, dict(zip(names, fast, strict=False)), (xs,)), ys)
                first = loss.detach() if first is None else first
                g = torch.autograd.grad(loss, fast, create_graph=not fo)
                updates, state = opt.update(g, state, inplace=False)
                fast = torchopt.apply_updates(fast, updates, inplace=False)
                if fo:
                    fast = tuple(p.detach().requires_grad_(True) for p in fast)
            logits = query_logits(top, dict(zip(names, fast, strict=False)), xs, xq)
            q = F.cross_entropy(logits, ep.query_y)
            wrt = fast if fo else tuple(params.values())
            for n, gi in zip(names, torch.autograd.grad(q, wrt), strict=False):
                grads[n] += gi / len(episodes)
            per_task.append(task_scores(logits.detach(), pre, ep.query_y, first))
        return grads, mean_over_tasks(per_task)
