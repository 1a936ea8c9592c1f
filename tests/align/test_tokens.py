import pytest
import torch

from rocket_openvla.align import gather_tokens


def test_gathers_each_samples_positions_in_order():
    hidden = torch.arange(20.0).reshape(2, 10, 1)  # sample 1 holds 10..19
    positions = torch.tensor([[1, 2, 3], [5, 4, 8]])
    assert gather_tokens(hidden, positions).squeeze(-1).tolist() == [[1, 2, 3], [15, 14, 18]]
    # the OpenVLA release's one-token shift: patch k + 1 is paired with teacher patch k
    assert gather_tokens(hidden, positions + 1)[0].flatten().tolist() == [2, 3, 4]


def test_gradients_reach_the_gathered_states_only():
    hidden = torch.zeros(1, 5, 2, requires_grad=True)
    gather_tokens(hidden, torch.tensor([[1, 3]])).sum().backward()
    assert hidden.grad[0, :, 0].tolist() == [0, 1, 0, 1, 0]


def test_positions_past_the_sequence_or_of_the_wrong_batch_fail():
    with pytest.raises(RuntimeError, match="index"):
        gather_tokens(torch.zeros(1, 7, 1), torch.tensor([[6, 7]]))
    with pytest.raises(ValueError, match=r"\[B=1, T\]"):
        gather_tokens(torch.zeros(1, 7, 1), torch.tensor([[1], [2]]))
