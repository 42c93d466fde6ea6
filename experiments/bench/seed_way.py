"""Reptile the write-up's way ("Meta Learning the Huggingface Way", Barua & Kumbakkara):
a `copy.deepcopy` of the whole model per task, the task's texts tokenized inside the loop
and padded to a fixed `max_length` (256), an inner `torch.optim` optimizer stepping the copy
through the model's full forward, and the meta-update from `meta - fast` differences.

Its math is metalearn's Reptile (plain SGD on the whole support set, the same inner steps,
the same outer optimizer), so the two compute the same numbers up to float rounding (the
padding is masked); only the way differs. The write-up itself uses AdamW on mini-batches of 5,
tokenizes each task with a `datasets.map` after filtering the whole dataset, and scores the
query set after every inner epoch: all of that would cost it more. Only the last is measured
here, as a variant (`score_every_epoch`: the query forward after each inner step, under
no_grad, which changes no weight).
"""
from __future__ import annotations

import copy
import time

import torch
import torch.nn.functional as F

from bench.device import to
from bench.handloop import HandLoop, accuracy
from bench.same_math import Params

RawTask = tuple[list[str], torch.Tensor, list[str], torch.Tensor]


class SeedWayReptile(HandLoop):
    """The seed's loop structure with metalearn's Reptile math (see the module docstring)."""

    name = "the write-up's way"
    equal_pre_forwards = False  # the write-up does not score the query set before adapting

    def __init__(self, *args, tokenizer, pad_to: int = 256, score_every_epoch: bool = False,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for module in self.model.modules():  # every review at the padded length, as the seed's
            if hasattr(module, "skip_padding"):  # model runs (no length groups, models/lengths.py)
                module.skip_padding = False
        self.tokenizer, self.pad_to, self.score_every_epoch = tokenizer, pad_to, score_every_epoch
        if score_every_epoch:
            self.name = "the write-up's way, query scored every inner epoch"
        self.seconds = {"deepcopy": 0.0, "tokenize": 0.0}  # CPU seconds, last run
        self.steps_run = 0

    def run(self, steps: int, timed_from: int):
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.steps_run = steps
        return super().run(steps, timed_from)

    def encode(self, texts: list[str]) -> dict[str, torch.Tensor]:
        enc = self.tokenizer(texts, padding="max_length", truncation=True,
                             max_length=self.pad_to, return_tensors="pt")
        return to({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]},
                  self.device)

    def fetch(self, step: int) -> list[RawTask]:
        """The seed starts from raw texts: the same reviews as the episodes, untokenized."""
        tasks = [self.source.raw_task(step, t) for t in range(self.source.meta_batch)]
        return [(s, to(sy, self.device), q, to(qy, self.device)) for s, sy, q, qy in tasks]

    def meta_gradient(self, tasks: list[RawTask], params: Params):
        names = list(params)
        sums = {n: torch.zeros_like(p) for n, p in params.items()}
        losses, q_losses, q_accs = [], [], []
        for s_text, s_y, q_text, q_y in tasks:
            t = time.process_time()
            fast_model = copy.deepcopy(self.model)
            self.seconds["deepcopy"] += time.process_time() - t
            fast = dict(fast_model.top.named_parameters())
            inner = torch.optim.SGD([fast[n] for n in names], lr=self.inner_lr)
            t = time.process_time()
            support, query = self.encode(s_text), self.encode(q_text)
            self.seconds["tokenize"] += time.process_time() - t
            fast_model.train()
            for k in range(self.inner_steps):
                loss = F.cross_entropy(fast_model(support), s_y)
                loss.backward()
                inner.step()
                inner.zero_grad()
                if k == 0:
                    losses.append(loss.detach())
                if self.score_every_epoch and k < self.inner_steps - 1:
                    with torch.no_grad():  # the last epoch's scoring is the one below
                        fast_model(query)
            fast_model.eval()
            with torch.no_grad():
                logits = fast_model(query)
                q_losses.append(F.cross_entropy(logits, q_y))
                q_accs.append(accuracy(logits, q_y))
                for n in names:
                    sums[n] += params[n] - fast[n]
            del fast_model, inner
        grads = {n: g / len(tasks) for n, g in sums.items()}
        scores = {"support_loss": torch.stack(losses).mean(),
                  "query_loss": torch.stack(q_losses).mean(),
                  "query_acc": torch.stack(q_accs).mean()}
        return grads, scores
