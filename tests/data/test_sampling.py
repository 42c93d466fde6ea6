"""Episodes: balanced, support and query disjoint, a pure function of the seed."""
from __future__ import annotations

import numpy as np
import pytest

from metalearn.data.sampling import TaskSampler


def pools():
    rng = np.random.default_rng(0)
    idx = rng.permutation(1000)
    return {
        "a/t2": {"negative": idx[:30], "positive": idx[30:200]},
        "b/t4": {"negative": idx[200:230], "positive": idx[230:400]},
    }


def test_episodes_are_balanced_and_disjoint():
    s = TaskSampler(pools(), ways=2, shots=5, queries=7)
    for i in range(50):
        e = s.train_episode(seed=3, step=0, task=i)
        assert sorted(e.support_labels) == [0] * 5 + [1] * 5
        assert sorted(e.query_labels) == [0] * 7 + [1] * 7
        assert not set(e.support) & set(e.query)
        fam = s.pools[e.family]
        for i_, lab in zip(e.support + e.query, e.support_labels + e.query_labels, strict=False):
            assert i_ in set(fam[["negative", "positive"][lab]].tolist())


def test_episodes_are_deterministic_per_seed():
    a = TaskSampler(pools(), ways=2, shots=5, queries=5)
    b = TaskSampler(pools(), ways=2, shots=5, queries=5)
    assert [a.train_episode(1, 2, i) for i in range(10)] == [b.train_episode(1, 2, i) for i in range(10)]
    assert a.train_episode(1, 2, 0) != a.train_episode(2, 2, 0)
    assert a.fixed_episodes(7, 3) == b.fixed_episodes(7, 3)


def test_k_plus_l_larger_than_smallest_class_is_refused():
    with pytest.raises(ValueError, match=r"K \+ L .* 'a/t2' has only 30 in class 'negative'"):
        TaskSampler(pools(), ways=2, shots=20, queries=11)


def test_relabelled_episodes_name_each_label_s_class_in_the_pooled_label_space():
    """`classes[label]` is the class id a pooled classifier (algorithm=finetune) trains on."""
    rng = np.random.default_rng(1)
    idx = rng.permutation(600)
    image_pools = {"x": {f"c{i}": idx[20 * i:20 * (i + 1)] for i in range(20)},
                   "y": {f"d{i}": idx[400 + 20 * i:420 + 20 * i] for i in range(10)}}
    s = TaskSampler(image_pools, ways=5, shots=1, queries=3, shuffle_classes=True)
    assert s.num_classes == 30
    names = {i: key for key, i in s.class_ids.items()}  # id -> (family, class)
    assert sorted(names) == list(range(30))
    seen = set()
    for task in range(40):
        e = s.train_episode(seed=0, step=0, task=task)
        assert len(set(e.classes)) == 5
        seen.update(e.classes)
        for i_, lab in zip(e.support + e.query, e.support_labels + e.query_labels, strict=False):
            family, cls = names[e.classes[lab]]
            assert family == e.family and i_ in set(image_pools[family][cls].tolist())
    assert len(seen) > 20  # episodes draw from the whole pool, not a fixed few classes
