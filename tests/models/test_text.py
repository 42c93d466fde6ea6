"""The text model run in length groups computes what it computes padded (models/lengths.py)."""
from __future__ import annotations

import pytest
import torch

from metalearn.data.batches import pad_token_rows
from metalearn.models.lengths import length_groups, skips_padding
from metalearn.models.text import TextClassifier

TINY = {"hidden_size": 32, "num_hidden_layers": 3, "num_attention_heads": 2,
        "intermediate_size": 64}
LENGTHS = (31, 7, 31, 12, 2, 30, 19, 8)


def batch(lengths=LENGTHS, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return pad_token_rows([torch.randint(5, 1000, (n,), generator=g).tolist() for n in lengths], 0)


def model(trainable_layers, skip_padding) -> TextClassifier:
    torch.manual_seed(0)
    return TextClassifier(trainable_layers=trainable_layers, dropout=0.0, random_init=True,
                          config_overrides=TINY, skip_padding=skip_padding)


def test_groups_cover_every_row_once_longest_first_within_the_slack() -> None:
    mask = batch()["attention_mask"]
    groups = length_groups(mask, slack=1.1)
    rows = torch.cat([g for g, _ in groups])
    assert sorted(rows.tolist()) == list(range(len(LENGTHS)))
    lengths = mask.sum(1)
    assert [w for _, w in groups] == sorted({w for _, w in groups}, reverse=True)
    for g, width in groups:
        assert width == int(lengths[g].max())
        assert len(g) * width <= 1.1 * int(lengths[g].sum())
    # 31, 31, 30 share a group (93 cells for 92 tokens), 8 and 7 too; 19 and 12 do not.
    assert [len(g) for g, _ in groups] == [3, 1, 1, 2, 1]
    assert len(length_groups(mask, slack=100.0)) == 1


@pytest.mark.parametrize("trainable_layers", [1, 0, "all"])
def test_length_groups_give_the_padded_outputs_and_gradients(trainable_layers) -> None:
    padded, grouped = model(trainable_layers, False), model(trainable_layers, True)
    x = batch()
    outputs, grads = [], []
    for m in (padded, grouped):
        out = m(x)  # [B, 2]
        params = [p for p in m.top.parameters()]
        g = torch.autograd.grad(out.logsumexp(1).sum() + out[:, 0].pow(2).sum(), params)
        outputs.append(out.detach())
        grads.append(torch.cat([t.flatten() for t in g]))
    assert outputs[0].abs().min() > 1e-3  # a real output, not zeros on both sides
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6 * grads[0].abs().max())


def test_the_trunk_in_groups_gives_the_padded_states_of_real_tokens() -> None:
    x = batch()
    real = x["attention_mask"].bool()
    padded, grouped = (model(1, s).features(x)["hidden"] for s in (False, True))
    torch.testing.assert_close(grouped[real], padded[real], rtol=1e-5, atol=1e-6)
    # Only the padding inside a group is computed: 30 tokens beside two 31s, 7 beside 8.
    computed = int((grouped.abs().sum(-1) > 0).sum())
    assert computed == sum(len(g) * w for g, w in length_groups(x["attention_mask"]))
    assert computed == int(real.sum()) + 2


def test_padding_changes_the_output_when_the_mask_is_dropped() -> None:
    """The comparison above can fail: without its mask a padded row reads its padding."""
    m = model(1, False)
    x = batch()
    unmasked = {"input_ids": x["input_ids"], "attention_mask": torch.ones_like(x["attention_mask"])}
    assert not torch.allclose(m(x), m(unmasked), rtol=1e-3)


def test_auto_skips_padding_on_a_cpu_only_and_bad_settings_are_refused() -> None:
    assert skips_padding("auto", torch.zeros(1)) is True
    assert skips_padding("auto", torch.zeros(1, device="meta")) is False
    assert skips_padding(False, torch.zeros(1)) is False
    with pytest.raises(ValueError, match="model.skip_padding must be true, false or auto"):
        model(1, "yes")
