"""Conv4: shapes, and support-only batch statistics keep query rows from shaping predictions."""
from __future__ import annotations

import pytest
import torch

from metalearn.models.conv4 import Conv4
from metalearn.models.norm import support_statistics


def test_shapes_and_inferred_embedding_size():
    model = Conv4(ways=5)
    x = torch.rand(7, 1, 28, 28)
    assert model.top.embed(x).shape == (7, 64) and model(x).shape == (7, 5)
    big = Conv4(in_channels=3, hidden=32, ways=20, image_size=84)
    assert big.top.embed(torch.rand(2, 3, 84, 84)).shape == (2, 32 * 5 * 5)
    assert big(torch.rand(2, 3, 84, 84)).shape == (2, 20)
    assert not list(model.trunk.parameters())  # the whole model is adapted
    assert all(p.requires_grad for p in model.top.parameters())
    with pytest.raises(ValueError, match="image_size=8 is too small"):
        Conv4(image_size=8)


def test_support_statistics_keep_query_rows_independent():
    torch.manual_seed(0)
    model = Conv4(ways=5)
    xs, xq = torch.rand(5, 1, 28, 28), torch.rand(6, 1, 28, 28)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    with support_statistics(model.top, len(xs)):
        full = model(torch.cat([xs, xq]))
        permuted = model(torch.cat([xs, xq[perm]]))
        subset = model(torch.cat([xs, xq[:2]]))
        alone = model(torch.cat([xs, xq[4:5]]))
    close = dict(atol=1e-5, rtol=1e-5)
    assert torch.allclose(full[:5], permuted[:5], **close)  # support: no query influence
    assert torch.allclose(full[:5], subset[:5], **close)
    assert torch.allclose(full[5:][perm], permuted[5:], **close)  # each query: only itself
    assert torch.allclose(full[5:7], subset[5:], **close)
    assert torch.allclose(full[9], alone[5], **close)
    # Without it the batch statistics mix the rows: the check above is not vacuous.
    assert not torch.allclose(model(torch.cat([xs, xq]))[:5], model(torch.cat([xs, xq[:2]]))[:5],
                              **close)


def textbook_norm(x, rows, weight, bias, eps):
    """Batch norm as usually written, with statistics of the first `rows` rows."""
    ref = x[:rows]
    mean, var = ref.mean(dim=(0, 2, 3)), ref.var(dim=(0, 2, 3), unbiased=False)
    shape = (1, -1, 1, 1)
    return (x - mean.view(shape)) / torch.sqrt(var.view(shape) + eps) * weight.view(shape) \
        + bias.view(shape)


def test_support_statistics_norm_is_the_textbook_formula_to_second_order():
    """The folded scale-and-shift form: same values, gradients and second derivatives (what
    second-order MAML differentiates), checked in float64 by autograd's finite differences."""
    from metalearn.models.norm import EpisodeBatchNorm2d

    torch.manual_seed(0)
    norm = EpisodeBatchNorm2d(3).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = torch.randn(7, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    w, b = norm.weight, norm.bias
    with support_statistics(norm, 3):
        out = norm(x)
        torch.testing.assert_close(out, textbook_norm(x, 3, w, b, norm.eps))
        g = torch.autograd.grad(out.pow(3).sum(), (x, w, b))
        g_ref = torch.autograd.grad(textbook_norm(x, 3, w, b, norm.eps).pow(3).sum(), (x, w, b))
        for a, r in zip(g, g_ref, strict=True):
            torch.testing.assert_close(a, r)

        def f(x, w, b):
            return torch.func.functional_call(norm, {"weight": w, "bias": b}, (x,))

        assert torch.autograd.gradgradcheck(f, (x, w, b))
    # The rows after the statistics' rows do not move the statistics.
    with support_statistics(norm, 3):
        torch.testing.assert_close(norm(x)[:3], norm(x[:3]))
