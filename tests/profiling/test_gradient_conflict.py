"""The gradient-conflict tool on the tiny set-up: the real objective per layout, the block-0 LoRA parameters,
checkpoints over steps."""

import pytest
import torch

from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling.config import GradientSettings
from rocket_openvla.profiling.gradient_conflict import cosine_matrix, gradient_record, select_parameters
from rocket_openvla.profiling.runs import Subject, run_checkpoints


@pytest.fixture(scope="module")
def layouts_record(tiny_session, tmp_path_factory):
    subject = Subject(tiny_session.config, tmp_path_factory.mktemp("gradients"), [])
    return gradient_record(tiny_session, subject, GradientSettings(num_batches=1, layouts=["rocket", "shared"]))


def test_matryoshka_changes_the_gradient_cosines(layouts_record):
    layouts = layouts_record["layouts"]
    assert layouts["rocket"]["widths"] == [25, 128] and layouts["shared"]["widths"] == [128, 128]
    matrices = {name: torch.tensor(layout["steps"][0]["matrix"]) for name, layout in layouts.items()}
    for matrix in matrices.values():
        assert torch.allclose(matrix, matrix.T) and torch.allclose(matrix.diagonal(), torch.ones(2), atol=1e-6)
        assert matrix.abs().max() <= 1.0 + 1e-6
    # the same batch, LoRA and projector weights: only the pair widths differ
    assert abs(matrices["rocket"][0, 1] - matrices["shared"][0, 1]) > 0.05
    assert layouts_record["pairs"] == ["s1-t0", "s2-t1"]


def test_default_parameters_are_the_first_decoder_blocks_lora_weights(layouts_record, tiny_session):
    names = layouts_record["parameters"]["names"]
    assert names and all("lora_" in name and ".layers.0." in name for name in names)
    with tiny_session.train_step(tiny_session.config.rocket, 128) as step:
        every_block0_lora = [n for n, p in step.named_parameters()
                             if p.requires_grad and "lora_" in n and "language_model.model.layers.0." in n]
        assert sorted(select_parameters(step, None)) == sorted(every_block0_lora) == names
        assert list(select_parameters(step, r"objective\.projectors\.fc1")) == ["objective.projectors.fc1_weight",
                                                                                 "objective.projectors.fc1_bias"]
        with pytest.raises(ConfigError, match="gradient.parameters='nothing-matches'"):
            select_parameters(step, "nothing-matches")


def test_cosine_matrix_of_known_gradients():
    gradients = torch.tensor([[1.0, 0.0], [1.0, 1.0], [-2.0, 0.0]], dtype=torch.float64)
    expected = torch.tensor([[1.0, 2**-0.5, -1.0], [2**-0.5, 1.0, -(2**-0.5)], [-1.0, -(2**-0.5), 1.0]],
                            dtype=torch.float64)
    assert torch.allclose(cosine_matrix(gradients), expected, atol=1e-7)


def test_saved_steps_are_profiled_in_order(tiny_session, rocket_run):
    run_dir, saved = run_checkpoints(rocket_run)
    assert run_dir == rocket_run and [s.step for s in saved] == [3, 7]
    record = gradient_record(tiny_session, Subject(tiny_session.config, run_dir, saved), GradientSettings(1))
    steps = record["layouts"]["rocket"]["steps"]
    assert [s["step"] for s in steps] == [3, 7]
    assert steps[0]["matrix"] != steps[1]["matrix"]  # the projector moved between the checkpoints
