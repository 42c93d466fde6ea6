"""Adapt a checkpoint to the user's support set and predict their query set: the meta-test path.

The support and query rows become one `Episode`, with the run's tokenizer (or image decoding)
and its objective, and the module's own `query_predictions` adapts and predicts it, exactly as
an evaluation episode: Reptile / MAML / ANIL / Meta-SGD with their test-time inner steps and
step size and their decline-to-adapt check, ProtoNets with prototypes, fine-tuning with its
steps. Only what is read from the outputs differs: besides the arg-max class (taken on the
logits, as the objective takes it) the class probabilities are kept.

Labels are the user's strings. They are numbered as training numbers a family's classes
(data/text_index.py): integers numerically, any other labels in sorted order, or as `labels`
lists them; the sentiment models' output 0 is the negative class, and `negative`/`positive`,
`-1`/`1` or `0`/`1` all sort that way. Where the head has more outputs than the support set has
classes (a 3-intent head, a 2-intent customer), the outputs no label names are left out: the
probabilities are the softmax over the support set's classes.

`predict` is a plain function of a loaded module and two sets of rows: the CLI calls it, and so
can a server (holding `LoadedCheckpoint.lock` is its own business).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from metalearn.algorithms.episodic import EpisodicModule
from metalearn.data.episode import Episode
from metalearn.inference.errors import ExamplesError
from metalearn.inference.examples import Examples
from metalearn.inference.inputs import NumberInputs
from metalearn.inference.loading import LoadedCheckpoint
from metalearn.objectives import Objective

FAMILY = "predict"  # the episode's family and group: it is the user's own task


@dataclass(frozen=True)
class Predictions:
    """One prediction per query row.

    classes: the support set's labels in class order (None: regression). predicted: a label
    per row (regression: a value). probabilities: [Q, N] rows summing to one (None: regression).
    adapted: whether test-time adaptation ran, where the algorithm may decline
    (`eval_adapt_check`), else None. metric, score: the objective's metric over the query rows
    where the query file holds their labels, else score None.
    """

    classes: list[str] | None
    predicted: list[Any]
    probabilities: torch.Tensor | None
    adapted: bool | None
    metric: str
    score: float | None


def predict(loaded: LoadedCheckpoint, support: Examples, query: Examples,
            labels: list[str] | None = None) -> Predictions:
    """Adapt `loaded` on `support` and predict `query` (see the module docstring); `labels`:
    the class order, where the user gives it. Bad rows are refused before any compute."""
    learner, objective = loaded.learner, loaded.objective
    if objective.name == "regression":
        targets = _numbers(support, loaded)
        known = None if query.labels is None else _numbers(query, loaded)
        ways, classes = None, None
        shape = _target_shape(loaded)
        support_y = targets.reshape(len(support), *shape)
        query_y = torch.zeros(len(query), *shape)
    else:
        classes = class_order(support, labels, loaded)
        ways = len(classes)
        ids = {c: i for i, c in enumerate(classes)}
        support_y = torch.tensor([ids[lab] for lab in support.labels], dtype=torch.long)
        known = None if query.labels is None else _query_ids(
            query, ids, support, getattr(loaded.inputs, "label_column", "label"))
        query_y = torch.zeros(len(query), 1 + ways)  # filled with ClassProbabilities' rows
    episode = Episode(support_x=loaded.inputs.encode(support.inputs), support_y=support_y,
                      query_x=loaded.inputs.encode(query.inputs), query_y=query_y,
                      family=FAMILY, group=FAMILY, ways=ways,
                      shots=max(1, len(support) // (ways or 1)),
                      queries=max(1, len(query) // (ways or 1)))
    outputs, adapted = _query_outputs(learner, episode, ways, fresh_head=loaded.head_outputs is None)
    if classes is None:
        values = outputs.reshape(len(query), -1)
        score = None if known is None else objective.example_scores(
            outputs, known.reshape(outputs.shape)).mean().item()
        predicted = [v[0].item() if len(v) == 1 else v.tolist() for v in values]
        return Predictions(None, predicted, None, adapted, objective.metric, score)
    top, probabilities = outputs[:, 0].long(), outputs[:, 1:]
    score = None if known is None else objective.example_scores(top, known).mean().item()
    return Predictions(classes, [classes[i] for i in top.tolist()], probabilities, adapted,
                       objective.metric, score)


def _query_outputs(learner: EpisodicModule, episode: Episode, ways: int | None,
                   fresh_head: bool) -> tuple[torch.Tensor, bool | None]:
    """The module's query predictions for the episode (with ClassProbabilities' rows for a
    classifier), and the decline-to-adapt check's decision where it made one."""
    decisions = getattr(learner, "_adapt_decisions", None)  # GradientLearner's eval_adapt_check
    if decisions is not None:
        decisions.clear()
    objective = learner.objective
    if ways is not None:
        learner.objective = ClassProbabilities(objective, ways)
        if fresh_head and hasattr(learner, "pooled_head") and learner.pooled_head is not None:
            _zero_head(learner, ways)
    try:
        outputs, _ = learner.query_predictions(episode)
    finally:
        learner.objective = objective
    return outputs, (bool(decisions[-1]) if decisions else None)


def _zero_head(learner: EpisodicModule, ways: int) -> None:
    """A fine-tuning baseline with a pooled classifier meta-tests a fresh N-way head from zero
    (FineTune.add_pooled_head); here N is the support set's."""
    old = learner.model.top.head
    head = nn.Linear(old.in_features, ways)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
    learner.model.top.head = head.requires_grad_(False)


class ClassProbabilities:
    """The run's objective, whose predictions keep the class probabilities: rows of 1 + N
    numbers, the arg-max class over the support set's N classes (on the logits, as the
    objective takes it) and their softmax. Everything else is the objective's own."""

    def __init__(self, objective: Objective, ways: int) -> None:
        self.objective, self.ways = objective, ways

    def __getattr__(self, name: str) -> Any:
        return getattr(self.objective, name)

    def predictions(self, outputs: torch.Tensor) -> torch.Tensor:
        logits = outputs[..., : self.ways].float()  # [Q, N]
        return torch.cat([logits.argmax(-1, keepdim=True).float(), logits.softmax(-1)], -1)  # [Q, 1 + N]


def class_order(support: Examples, labels: list[str] | None, loaded: LoadedCheckpoint) -> list[str]:
    """The support set's classes in label order (`labels`, else integers numerically, else
    sorted); refuses a `labels` list that differs from the support's, fewer than two classes,
    and more than the head has outputs."""
    column = getattr(loaded.inputs, "label_column", "label")
    present = list(dict.fromkeys(support.labels or []))
    if labels is not None:
        missing = [lab for lab in labels if lab not in present]
        if missing:
            raise ExamplesError(f"labels={','.join(labels)}: {', '.join(map(repr, missing))} has no "
                                f"example in {support.where} (label_column {column!r})")
        extra = [lab for lab in present if lab not in labels]
        if extra:
            raise ExamplesError(f"{support.where}: label(s) {', '.join(map(repr, extra))} "
                                f"(label_column {column!r}) are not in labels={','.join(labels)}")
        order = list(labels)
    elif all(_is_int(lab) for lab in present):
        order = sorted(present, key=int)
    else:
        order = sorted(present)
    if len(order) < 2:
        raise ExamplesError(f"{support.where}: one class ({order[0]!r} in label_column {column!r}); "
                            f"a task has at least two")
    if loaded.head_outputs is not None and len(order) > loaded.head_outputs:
        raise ExamplesError(
            f"{support.where}: {len(order)} classes in label_column {column!r} "
            f"({', '.join(order)}), but {loaded.description} has a head of "
            f"{loaded.head_outputs} outputs: at most {loaded.head_outputs} classes")
    return order


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def _query_ids(query: Examples, ids: dict[str, int], support: Examples, column: str) -> torch.Tensor:
    """The query file's labels as class ids; one the support set lacks is an error."""
    for label, line in zip(query.labels, query.lines, strict=True):
        if label not in ids:
            raise ExamplesError(f"{query.where} ({line}): label {label!r} (label_column {column!r}) "
                                f"is missing from the support set {support.where} (its classes: "
                                f"{', '.join(ids)})")
    return torch.tensor([ids[lab] for lab in query.labels], dtype=torch.long)


def _numbers(examples: Examples, loaded: LoadedCheckpoint) -> torch.Tensor:
    """A regression file's targets; a class label there is an error."""
    column = getattr(loaded.inputs, "label_column", "label")
    values = []
    for label, line in zip(examples.labels or [], examples.lines, strict=False):
        try:
            values.append(float(label))
        except ValueError:
            raise ExamplesError(
                f"{examples.where} ({line}): label_column {column!r} holds {label!r}, but "
                f"{loaded.description} is a regression model (objective=regression): its targets "
                f"are numbers, not class labels") from None
    return torch.tensor(values, dtype=torch.float32)


def _target_shape(loaded: LoadedCheckpoint) -> tuple[int, ...]:
    """One target's shape: the model's output_shape (`[1]`: a scalar per row)."""
    shape = (loaded.run.config.get("model") or {}).get("output_shape") or [1]
    if isinstance(loaded.inputs, NumberInputs) and len(shape) > 1:
        raise ExamplesError(f"{loaded.description}: targets of shape {shape} do not come from one "
                            f"label column")
    return tuple(int(d) for d in shape)


def adaptation_summary(loaded: LoadedCheckpoint, result: Predictions) -> str:
    """What adapted, in one line: the algorithm, its test-time steps and step size, and the
    check's decision."""
    learner = loaded.learner
    name = type(learner).__name__
    if isinstance(learner, EpisodicModule) and not hasattr(learner, "eval_inner_steps"):
        return f"{name}: prototypes of the support set's classes (nothing adapts)"
    steps = learner.eval_inner_steps
    rate = getattr(learner, "eval_inner_lr", None)
    size = f"size {learner.inner_lr if rate is None else rate:g}"
    if getattr(learner, "inner_lrs", None) is not None:  # Meta-SGD
        size = "its learned per-parameter sizes"
    line = f"{name}: {steps} test-time steps of {size} on the support set"
    if result.adapted is False:
        line += "; declined by the adapt check (adapting did not lower the held-out support loss): " \
                "predicted with the meta-weights"
    elif result.adapted:
        line += " (the adapt check found it lowered the held-out support loss)"
    return line
