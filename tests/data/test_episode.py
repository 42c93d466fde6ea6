"""An episode moves to a device tensor by tensor, through Lightning's own batch transfer."""
from __future__ import annotations

import torch
from lightning_fabric.utilities.apply_func import move_data_to_device

from tests.conftest import toy_episode


def test_an_episode_moves_tensor_by_tensor_and_stays_itself_where_it_is():
    ep = toy_episode(0)
    assert ep.to("cpu") is ep
    moved = ep.to("meta")
    assert moved is not ep and (moved.family, moved.shots, moved.ways) == (ep.family, ep.shots, ep.ways)
    assert {t.device.type for t in (moved.support_x, moved.support_y, moved.query_x,
                                    moved.query_y)} == {"meta"}
    assert ep.support_x.device.type == "cpu"  # the original is left as it was


def test_a_tokenized_episode_moves_its_dicts_and_lightning_moves_a_meta_batch_through_it():
    text = toy_episode(1)
    text.support_x = {"input_ids": torch.ones(2, 3, dtype=torch.long),
                      "attention_mask": torch.ones(2, 3, dtype=torch.long)}
    text.classes = torch.tensor([4, 7])
    (moved, plain) = move_data_to_device([text, toy_episode(2)], torch.device("meta"))
    assert {v.device.type for v in moved.support_x.values()} == {"meta"}
    assert moved.classes.device.type == "meta" and text.classes.device.type == "cpu"
    assert plain.query_y.device.type == "meta"
    same = [toy_episode(3)]
    assert move_data_to_device(same, torch.device("cpu"))[0] is same[0]
