"""Training-free layer pairs: the release's balanced spacing, Uniform-k, E2M-Last (the paper's sets)."""

import shlex

import draccus
import pytest

from rocket_openvla.align import RocketConfig
from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling import balanced_layers, e2m_last_pairs, uniform_pairs
from rocket_openvla.profiling.selection import early_to_middle_last

# Outputs of the release's `get_balanced_layers` (compute_layer_selection.py @ d3da2c7): the seven calls run on CPU
# for its audit, and the 16- and 24-layer rows its script prints in its own comments.
RELEASE_BALANCED = {
    (32, 8): [3, 7, 11, 15, 19, 23, 27, 31],
    (24, 8): [2, 5, 8, 11, 14, 17, 20, 23],
    (32, 4): [7, 15, 23, 31],
    (24, 4): [5, 11, 17, 23],
    (32, 10): [2, 5, 9, 12, 15, 18, 21, 25, 28, 31],
    (24, 10): [1, 4, 6, 9, 11, 13, 16, 18, 21, 23],
    (18, 10): [1, 3, 4, 6, 8, 10, 12, 13, 15, 17],
    (32, 16): [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31],
    (32, 24): [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15, 17, 18, 19, 21, 22, 23, 25, 26, 27, 29, 30, 31],
    (24, 16): [1, 2, 4, 5, 7, 8, 10, 11, 13, 14, 16, 17, 19, 20, 22, 23],
    (24, 24): list(range(24)),
    (4, 9): [0, 1, 2, 3],
}


@pytest.mark.parametrize(("n_layers", "n_keep"), sorted(RELEASE_BALANCED))
def test_balanced_layers_reproduce_the_release(n_layers, n_keep):
    assert balanced_layers(n_layers, n_keep) == RELEASE_BALANCED[(n_layers, n_keep)]


@pytest.mark.parametrize("n_layers", [5, 18, 24, 32, 40])
def test_balanced_layers_are_distinct_sorted_and_end_at_the_last_block(n_layers):
    for n_keep in range(1, n_layers):
        layers = balanced_layers(n_layers, n_keep)
        assert len(layers) == n_keep == len(set(layers)) and layers == sorted(layers)
        assert layers[-1] == n_layers - 1 and layers[0] >= 0


def test_uniform_shifts_student_blocks_into_hidden_states():
    # the release's "+1 offset": block 31 of a 32-block student is hidden_states[32], after the final norm
    pairs = uniform_pairs(32, 24, 8)
    assert pairs.student_layers == [4, 8, 12, 16, 20, 24, 28, 32]
    assert pairs.teacher_layers == [2, 5, 8, 11, 14, 17, 20, 23]


def test_e2m_last_gives_the_papers_layer_pairs():
    openvla = e2m_last_pairs(32, 24, 10)  # configs/paper/openvla_libero_rocket.yaml
    assert openvla.student_layers == [2, 4, 6, 8, 10, 12, 14, 16, 18, 31]
    assert openvla.teacher_layers == [2, 4, 6, 8, 10, 12, 14, 16, 18, 23]
    pi0 = e2m_last_pairs(18, 24, 10, student_last="final_norm")  # configs/paper/pi0_libero_rocket.yaml (-1 = 18)
    assert pi0.student_layers == [2, 3, 4, 5, 6, 7, 8, 9, 10, 18]
    assert pi0.teacher_layers == openvla.teacher_layers


def test_e2m_last_fits_shallow_stacks_and_refuses_too_many_pairs():
    assert e2m_last_pairs(2, 2, 2, "final_norm").student_layers == [1, 2]  # the quickstart's tiny Llama
    assert early_to_middle_last(4, 4, last=3) == [0, 1, 2, 3]
    assert early_to_middle_last(24, 1, last=23) == [23]
    with pytest.raises(ConfigError, match="n_keep=5 layers do not fit below layer 3 of a 4-block stack"):
        early_to_middle_last(4, 5, last=3)
    with pytest.raises(ConfigError, match="student_last='last'; choose one of"):
        e2m_last_pairs(32, 24, 10, student_last="last")


def test_cli_arguments_parse_into_the_rocket_config():
    pairs = e2m_last_pairs(32, 24, 10)
    arguments = shlex.split(pairs.cli_arguments().replace("--rocket.", "--"))
    rocket = draccus.parse(RocketConfig, args=arguments)
    assert rocket.student_layers == pairs.student_layers and rocket.teacher_layers == pairs.teacher_layers
