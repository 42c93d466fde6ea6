"""A validation check reuses the frozen trunk's outputs on the episodes an earlier check ran
(models/trunk_cache.py): the same predictions bit for bit, the trunk run once per episode."""
from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from metalearn.algorithms.reptile import Reptile
from metalearn.data.batches import pad_token_rows
from metalearn.data.episode import Episode
from metalearn.models.split import SplitModel
from metalearn.models.text import TextClassifier
from metalearn.models.trunk_cache import AUTO_LIMIT_BYTES, TrunkCache, checked_setting
from metalearn.objectives import Classification

TINY = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2, "intermediate_size": 64}


def classifier(cache_trunk: bool | str = "auto", seed: int = 0) -> TextClassifier:
    torch.manual_seed(seed)
    return TextClassifier(trainable_layers=1, dropout=0.0, random_init=True, config_overrides=TINY,
                          cache_trunk=cache_trunk)


def tokens(lengths: list[int], g: torch.Generator) -> dict[str, torch.Tensor]:
    return pad_token_rows([torch.randint(5, 1000, (n,), generator=g).tolist() for n in lengths], 0)


def episode(seed: int) -> Episode:
    """2-way, 2 shots, 3 queries; reviews of unequal lengths, so the trunk runs in length groups."""
    g = torch.Generator().manual_seed(seed)
    return Episode(tokens([9, 4, 12, 7], g), torch.tensor([0, 0, 1, 1]),
                   tokens([5, 11, 3, 8, 10, 6], g), torch.tensor([0, 0, 0, 1, 1, 1]),
                   family="toy/t2", group="toy", ways=2, shots=2, queries=3)


def learner(model: TextClassifier) -> Reptile:
    return Reptile(model=model, objective=Classification(), optimizer=partial(torch.optim.SGD, lr=0.1),
                   inner_lr=0.1, inner_steps=2, eval_inner_steps=5, eval_adapt_check=True)


def count_calls(module: nn.Module) -> list[int]:
    calls = [0]
    module.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


def validate(m: Reptile, episodes: list[Episode]) -> list[dict]:
    """One validation check as Lightning runs it: eval mode, validation_step per episode."""
    m.eval()
    m.on_validation_epoch_start()
    for i, ep in enumerate(episodes):
        m.validation_step(ep, i)
    return list(m._scores)


def test_a_second_check_gives_the_uncached_predictions_and_features_bit_for_bit():
    episodes = [episode(1), episode(2)]
    cached, uncached = learner(classifier("auto")), learner(classifier(False))
    first = validate(cached, episodes)
    again = validate(cached, episodes)  # from the cache
    plain = validate(uncached, episodes)
    assert again == first == plain
    assert any(r["value"] != r["value_pre"] for r in plain)  # adapting moved some predictions
    cache = cached.model.trunk_cache
    cache.hits = cache.misses = 0
    for ep in episodes:
        for x in (ep.support_x, ep.query_x):
            with cached.model.reusing_trunk_outputs():
                got = cached.model.features(x)
            want = uncached.model.features(x)
            assert got.keys() == want.keys()
            for k in want:
                assert torch.equal(got[k], want[k]), k
        with cached.model.reusing_trunk_outputs():
            got = cached.query_predictions(ep)
        for a, b in zip(got, uncached.query_predictions(ep), strict=True):
            assert torch.equal(a, b)
    # The checks ran each support set and each query set sorted by length (query_chunks): those
    # came from the cache; the query sets in their own order had not been run.
    assert (cache.hits, cache.misses) == (6, 2)


def test_the_trunk_runs_once_per_episode_batch_over_several_checks():
    episodes = [episode(1), episode(2)]
    m = learner(classifier("auto"))
    calls = count_calls(m.model.trunk)
    validate(m, episodes)
    assert calls[0] == 4  # support and query (one chunk) of each episode
    validate(m, episodes)
    validate(m, episodes)
    assert calls[0] == 4
    validate(m, [episode(3)])  # an episode not seen before
    assert calls[0] == 6
    off = learner(classifier(False))
    off_calls = count_calls(off.model.trunk)
    validate(off, episodes)
    validate(off, episodes)
    assert off_calls[0] == 8
    assert off.model.trunk_cache is None


def test_other_trunk_weights_are_run_again():
    """A checkpoint loaded between checks (or the model moved) changes the trunk's tensors:
    what was kept is dropped and the trunk runs on the new weights."""
    episodes = [episode(1)]
    m, other = learner(classifier("auto")), learner(classifier(False, seed=1))
    calls = count_calls(m.model.trunk)
    validate(m, episodes)
    m.model.trunk.load_state_dict(other.model.trunk.state_dict())
    assert validate(m, episodes) == validate(other, episodes)
    assert calls[0] == 4


def test_training_and_calls_outside_a_validation_check_keep_nothing():
    m = learner(classifier("auto"))
    ep = episode(1)
    m.train()
    m.task_gradient(ep, m.meta_parameters())
    m.eval()
    m.evaluate_episode(ep)  # a meta-test episode: seen once, not kept
    assert m.model.trunk_cache.entries == {} and m.model.trunk_cache.bytes == 0


def frozen_linear() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(4, 3).requires_grad_(False)


def test_the_cache_keys_on_content_and_keeps_to_its_bound():
    trunk = frozen_linear()
    calls = count_calls(trunk)
    a, b = torch.randn(5, 4), torch.randn(5, 4)  # same shape, other content
    one_entry = 5 * 3 * 4
    cache = TrunkCache(limit_bytes=one_entry)
    assert torch.equal(cache.features(trunk, a), trunk(a))
    assert torch.equal(cache.features(trunk, a.clone()), trunk(a))
    assert torch.equal(cache.features(trunk, b), trunk(b))
    assert torch.equal(cache.features(trunk, b), trunk(b))
    assert calls[0] == 2 + 4 + 1  # a once, b twice (over the bound), and the 4 direct calls
    assert cache.bytes == one_entry and len(cache.entries) == 1
    assert torch.equal(cache.features(trunk, a.double().float()), trunk(a))  # same values, same key
    assert calls[0] == 7 + 1


class DictTrunk(nn.Module):
    """A trunk with a weight that returns a dict, as the text model's does."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()), requires_grad=False)

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"hidden": x["input_ids"].float() * self.scale, "attention_mask": x["input_ids"]}


def test_a_dict_output_is_handed_out_as_a_copy():
    """A caller that changes the dict it was given changes nothing kept."""
    trunk, cache = DictTrunk(), TrunkCache(limit_bytes=None)
    x = {"input_ids": torch.ones(2, 3, dtype=torch.long)}
    cache.features(trunk, x)
    got = cache.features(trunk, x)
    got["hidden"] = None
    assert torch.equal(cache.features(trunk, x)["hidden"], torch.ones(2, 3))
    assert cache.hits == 2 and cache.misses == 1


def test_settings_and_trunks_without_weights():
    assert checked_setting("auto") == "auto" and checked_setting(False) is False
    for bad in ("yes", 1, None):
        with pytest.raises(ValueError, match="model.cache_trunk must be true, false or auto"):
            checked_setting(bad)
    with pytest.raises(ValueError, match="model.cache_trunk"):
        classifier("always")
    assert SplitModel(top=nn.Linear(3, 2)).trunk_cache is None  # nothing to save: no trunk
    assert SplitModel(top=nn.Linear(3, 2), trunk=frozen_linear()).trunk_cache.limit == AUTO_LIMIT_BYTES
    assert SplitModel(top=nn.Linear(3, 2), trunk=frozen_linear(), cache_trunk=True).trunk_cache.limit is None
