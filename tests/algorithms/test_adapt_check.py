"""eval_adapt_check: test-time adaptation declines where it did not help on held-out support rows."""
from __future__ import annotations

from dataclasses import replace
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from metalearn.algorithms.adapt_check import adaptation_gain, support_folds
from metalearn.algorithms.reptile import Reptile
from metalearn.data.batches import take_rows
from metalearn.data.episode import Episode
from metalearn.models.split import SplitModel
from metalearn.objectives import Classification
from tests.algorithms.test_oracles import sgd_by_hand

E1 = torch.tensor([2.0, 0.0, 0.0])


def checked_learner() -> Reptile:
    torch.manual_seed(0)
    return Reptile(model=SplitModel(top=nn.Linear(3, 2)), objective=Classification(),
                   optimizer=partial(torch.optim.SGD, lr=1.0), inner_lr=0.5, inner_steps=3,
                   eval_inner_steps=3, eval_adapt_check=True)


def episode(support_x: torch.Tensor, support_y: torch.Tensor) -> Episode:
    g = torch.Generator().manual_seed(3)
    return Episode(support_x, support_y, torch.randn(8, 3, generator=g), torch.tensor([0, 1] * 4),
                   family="toy/t0", group="toy", ways=2, shots=4, queries=4)


def test_support_folds_deal_each_class_in_turn():
    first, second = support_folds(torch.tensor([0, 1, 0, 1, 1, 0]))
    assert first.tolist() == [0, 5, 1, 4] and second.tolist() == [2, 3]
    first, second = support_folds(torch.tensor([0.5, -1.0, 2.0]))  # regression: rows in order
    assert first.tolist() == [0, 2] and second.tolist() == [1]


def test_adaptation_gain_equals_hand_computed_held_out_losses():
    ml = checked_learner()
    g = torch.Generator().manual_seed(5)
    xs, ys = torch.randn(8, 3, generator=g), torch.tensor([0, 1] * 4)
    W0, b0 = ml.model.top.weight.detach(), ml.model.top.bias.detach()
    first, second = support_folds(ys)
    expected = 0.0
    for train, held in ((first, second), (second, first)):
        W, b = sgd_by_hand(W0, b0, xs[train], ys[train], 3, 0.5)
        before = F.cross_entropy(xs[held] @ W0.T + b0, ys[held])
        after = F.cross_entropy(xs[held] @ W.T + b, ys[held])
        expected += (before - after).item()
    gain = adaptation_gain(ml, ml.adapt_support, ml.meta_parameters(), xs, ys, 3)
    assert abs(gain - expected) < 1e-5


def test_declines_where_the_folds_disagree_and_adapts_where_they_agree():
    ml = checked_learner()
    # Class 0 lies at +E1 in fold 0 and at -E1 in fold 1 (class 1 the opposite): what one fold
    # teaches, the other contradicts, so the check keeps the meta-weights.
    ys = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    contradicting = episode(sign[:, None] * E1, ys)
    ml.eval_adapt_check = False
    adapted, _ = ml.query_predictions(contradicting)
    ml.eval_adapt_check = True
    post, pre = ml.query_predictions(contradicting)
    assert not torch.equal(adapted, pre)  # adapting would change some predictions ...
    torch.testing.assert_close(post, pre)  # ... and the check declines
    # Every row agrees (class 0 at +E1): adapting helps held-out rows, so it adapts.
    agreeing = episode(torch.where(ys[:, None] == 0, E1, -E1), ys)
    ml.eval_adapt_check = False
    adapted, _ = ml.query_predictions(agreeing)
    ml.eval_adapt_check = True
    post, pre = ml.query_predictions(agreeing)
    assert not torch.equal(adapted, pre)  # adapting changes some predictions here ...
    torch.testing.assert_close(post, adapted)  # ... and the check lets it


def test_take_rows_cuts_each_tensor_of_a_feature_dict_and_keeps_the_rest():
    """Text trunks return dicts (a tiny one with no frozen layers has None hidden states)."""
    feats = {"input_ids": torch.arange(12).view(4, 3), "attention_mask": torch.ones(4, 3), "hidden": None}
    out = take_rows(feats, torch.tensor([0, 2]))
    assert out["input_ids"].tolist() == [[0, 1, 2], [6, 7, 8]] and out["hidden"] is None
    assert out["attention_mask"].shape == (2, 3)


def test_one_example_per_class_leaves_nothing_to_hold_out_so_it_adapts():
    ml = checked_learner()
    ys = torch.tensor([0, 1])
    assert adaptation_gain(ml, ml.adapt_support, ml.meta_parameters(), torch.eye(3)[:2], ys, 3) == float("inf")


def test_at_one_example_per_class_eval_adapt_check_strict_keeps_the_meta_weights():
    """Nothing to hold out: by default the check adapts as if unchecked; with
    `eval_adapt_check_strict=true` it keeps the meta-weights. At two examples per class the
    check decides either way."""
    ml = checked_learner()
    one_shot = episode(torch.stack([E1, -E1]), torch.tensor([0, 1]))
    ml.eval_adapt_check = False
    adapted, pre = ml.query_predictions(one_shot)
    assert not torch.equal(adapted, pre)
    ml.eval_adapt_check = True
    post, _ = ml.query_predictions(one_shot)
    torch.testing.assert_close(post, adapted)
    assert ml.evaluate_episode(one_shot)["adapted"] == 1.0
    ml.eval_adapt_check_strict = True
    post, _ = ml.query_predictions(one_shot)
    torch.testing.assert_close(post, pre)
    assert ml.evaluate_episode(one_shot)["adapted"] == 0.0
    agreeing = episode(torch.stack([E1, E1, -E1, -E1]), torch.tensor([0, 0, 1, 1]))
    ml.eval_adapt_check = False
    adapted, _ = ml.query_predictions(agreeing)
    ml.eval_adapt_check = True
    post, _ = ml.query_predictions(agreeing)
    torch.testing.assert_close(post, adapted)  # checked, helped: adapts, strict or not


def test_the_meta_test_reports_how_often_the_check_let_adaptation_run(monkeypatch):
    """test/<group>/adapted: the share of a group's episodes that adapted (one declined, one
    adapted: 0.5), logged beside the accuracy; without the check there is no such metric."""
    ml = checked_learner()
    ys = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    episodes = [episode(sign[:, None] * E1, ys), episode(torch.where(ys[:, None] == 0, E1, -E1), ys)]
    logged = {}
    monkeypatch.setattr(ml, "log_dict", lambda metrics, **kw: logged.update(metrics))
    ml.on_test_epoch_start()
    for i, ep in enumerate(episodes):
        ml.test_step(ep, i)
    ml.on_test_epoch_end()
    assert logged["test/toy/adapted"] == 0.5
    ml.eval_adapt_check, logged = False, {}
    monkeypatch.setattr(ml, "log_dict", lambda metrics, **kw: logged.update(metrics))
    ml.on_test_epoch_start()
    ml.test_step(episodes[0], 0)
    ml.on_test_epoch_end()
    assert "test/toy/acc" in logged and not any(k.endswith("adapted") for k in logged)


def query_loss_change(ml: Reptile, ep: Episode) -> float:
    """Query loss after adapting on the whole support set minus before (negative: it helped)."""
    params = ml.meta_parameters()
    fast, _ = ml.adapt_support(params, ep.support_x, ep.support_y, ml.eval_inner_steps)
    with torch.no_grad():
        after = F.cross_entropy(ml.predict(fast, ep.support_x, ep.query_x), ep.query_y)
        before = F.cross_entropy(ml.predict(params, ep.support_x, ep.query_x), ep.query_y)
    return (after - before).item()


def test_the_decision_never_reads_the_query_labels():
    """Query labels chosen so that a rule reading them would decide the other way: where the
    support folds decline, adapting would help these queries; where they adapt, it would hurt.
    The decision, and so the predictions, follow the support alone. A decline-to-adapt rule
    that read the query labels moved the recorded debug numbers by 0.05 and more; this test
    fails on it whatever the debug fixture holds."""
    ml = checked_learner()
    ys = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    sign = torch.tensor([1.0, -1.0, 1.0, -1.0, -1.0, 1.0, -1.0, 1.0])
    for support_x, adapts in ((sign[:, None] * E1, False),
                              (torch.where(ys[:, None] == 0, E1, -E1), True)):
        ep = episode(support_x, ys)
        ml.eval_adapt_check = False
        adapted, pre = ml.query_predictions(ep)
        ml.eval_adapt_check = True
        assert not torch.equal(adapted, pre)
        # queries labelled as the adapted weights predict them (declining case) or against
        # them (adapting case), whatever the support says
        misleading = replace(ep, query_y=1 - adapted if adapts else adapted)
        assert (query_loss_change(ml, misleading) < 0) != adapts  # it would mislead a query rule
        for shown in (ep, misleading):
            assert ml.evaluate_episode(shown)["adapted"] == float(adapts)
            post, _ = ml.query_predictions(shown)
            torch.testing.assert_close(post, adapted if adapts else pre)
