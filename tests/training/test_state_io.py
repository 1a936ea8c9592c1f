import random

import numpy as np
import torch

from rocket_openvla.training.rng import restore_rng_state, rng_state
from rocket_openvla.training.state_io import load_state_tree, save_state_tree


def test_optimizer_state_round_trip_keeps_int_keys_and_tuples(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    model(torch.randn(4, 3)).sum().backward()
    optimizer.step()
    save_state_tree(optimizer.state_dict(), tmp_path, "optimizer")
    loaded = load_state_tree(tmp_path, "optimizer")
    original = optimizer.state_dict()
    assert list(loaded["state"]) == [0, 1]
    assert loaded["param_groups"][0]["betas"] == (0.8, 0.9)
    for index in (0, 1):
        for key, value in original["state"][index].items():
            assert torch.equal(loaded["state"][index][key], value)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.1, betas=(0.8, 0.9))
    fresh.load_state_dict(loaded)


def test_rng_states_restore_exactly(tmp_path):
    save_state_tree(rng_state(), tmp_path, "rng")
    expected = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng_state(load_state_tree(tmp_path, "rng"))
    assert random.random() == expected[0]
    assert np.random.rand() == expected[1]
    assert torch.equal(torch.rand(3), expected[2])
