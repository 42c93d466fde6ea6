"""Layer-spec models: allowlisted layers only, auto sizes, clear errors for bad specs."""
from __future__ import annotations

import pytest
import torch

from metalearn.models.layers import LayerModel, LayerSpecError, build_layers, check_layers, check_model

CONV = [
    {"name": "Conv2d", "in_channels": "auto", "out_channels": 8, "kernel_size": 5},
    {"name": "ReLU", "inplace": True},
    {"name": "MaxPool2d", "kernel_size": 2, "stride": 2},
    {"name": "Flatten", "start_dim": 1},
    {"name": "Linear", "in_features": "auto", "out_features": 32},
    {"name": "ReLU"},
    {"name": "Linear", "in_features": "auto", "out_features": "num_labels"},
]
TOKENS = [
    {"name": "EmbeddingBag", "num_embeddings": "vocab_size", "embedding_dim": 8, "mode": "mean", "padding_idx": 0},
    {"name": "Linear", "in_features": "auto", "out_features": "num_labels"},
]


def test_auto_sizes_are_inferred_like_the_source_document() -> None:
    net = build_layers(CONV, [3, 28, 28], values={"num_labels": 5})
    assert net[0].in_channels == 3 and net[4].in_features == 8 * 12 * 12
    assert net(torch.randn(4, 3, 28, 28)).shape == (4, 5)


def test_a_token_model_adapts_through_its_top() -> None:
    model = LayerModel(TOKENS, num_labels=2, vocab_size=100)
    batch = {"input_ids": torch.randint(1, 100, (3, 9)), "attention_mask": torch.ones(3, 9)}
    assert model(batch).shape == (3, 2)
    assert all(p.requires_grad for p in model.top.parameters())


@pytest.mark.parametrize(
    ("specs", "message"),
    [
        ([{"name": "__import__"}], "unknown or disallowed layer"),
        ([{"name": "Sequential"}], "unknown or disallowed layer"),
        ([{"out_features": 3}], "unknown or disallowed layer None"),
        (["Linear"], "a layer spec is a mapping"),
        ([{"name": "Linear", "in_features": "auto", "out_features": 2, "bogus": 1}], "unknown arguments"),
        ([{"name": "Linear", "in_features": "auto", "out_features": {"a": 1}}], "must be a number"),
        ([{"name": "Linear", "in_features": 10**5, "out_features": 10**5}], "parameters"),
        ([{"name": "Linear", "in_features": 7, "out_features": 2}], "does not fit its input"),
        ([{"name": "ReLU", "inplace": "auto"}], "cannot be auto"),
        ([], "non-empty list"),
    ],
)
def test_bad_specs_are_clear_errors(specs: list, message: str) -> None:
    with pytest.raises(LayerSpecError, match=message):
        check_layers(specs, [3, 28, 28], values={"num_labels": 2})


def test_the_model_must_end_in_num_labels() -> None:
    with pytest.raises(LayerSpecError, match="must end in"):
        check_model(CONV[:-1], num_labels=2, input="tensor", input_shape=[3, 28, 28])
    assert check_model(CONV, num_labels=2, input="tensor", input_shape=[3, 28, 28]) == {"num_labels": 2}


def test_token_input_needs_an_embedding_first() -> None:
    with pytest.raises(LayerSpecError, match="first layer must be one of"):
        check_model([{"name": "Linear", "in_features": "auto", "out_features": 2}], input_shape=[16])


SINE_MLP = [  # Finn et al. 2017's sinusoid regressor: 1-40-40-1 with ReLU
    {"name": "Linear", "in_features": "auto", "out_features": 40}, {"name": "ReLU"},
    {"name": "Linear", "in_features": "auto", "out_features": 40}, {"name": "ReLU"},
    {"name": "Linear", "in_features": "auto", "out_features": 1},
]


def test_a_regressor_declares_its_output_shape_instead_of_num_labels() -> None:
    model = LayerModel(SINE_MLP, num_labels=None, input="tensor", input_shape=[1], output_shape=[1])
    assert model(torch.randn(5, 1)).shape == (5, 1)
    assert [p.shape for p in model.top.parameters()] == [(40, 1), (40,), (40, 40), (40,), (1, 40), (1,)]
    assert model.top.head is model.top[4] and model.top.embed(torch.randn(5, 1)).shape == (5, 40)
    with pytest.raises(LayerSpecError, match=r"must end in output_shape = \[2\]"):
        check_model(SINE_MLP, input="tensor", input_shape=[1], output_shape=[2])
    with pytest.raises(LayerSpecError, match="output_shape must be a list of positive integers"):
        check_model(SINE_MLP, input="tensor", input_shape=[1], output_shape=[0])
    with pytest.raises(LayerSpecError, match="num_labels must be a positive integer"):
        check_model(SINE_MLP, num_labels=None, input="tensor", input_shape=[1])
