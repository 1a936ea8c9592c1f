"""The projector-similarity tool reads each projector layout as it was trained: our checkpoints and the release's
projector files; weights and outputs over saved steps."""

import pytest
import torch
from safetensors.torch import load_file

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.deploy.deploy_config import read_run_config
from rocket_openvla.errors import ConfigError
from rocket_openvla.profiling.projector_similarity import (
    checkpoint_objective,
    projector_record,
    release_objective,
    weight_similarity,
)
from rocket_openvla.profiling.runs import Subject, run_checkpoints
from rocket_openvla.training.checkpoint import TRAINABLE_NAME

from .conftest import save_run


def _release_state_dict(objective: RocketObjective) -> dict[str, torch.Tensor]:
    """The release's `align_projectors` layout (DDP `module.` prefix, `{pair}.{member}.fc1.weight`, `vlm_norm`) of
    the projector every pair of `objective` runs."""
    bank, state = objective.projectors, {}
    for pair in range(objective.num_pairs):
        index = objective.projector_index(pair, 0)
        prefix = f"module.{pair}.0."
        tensors = {"fc1.weight": bank.fc1_weight, "fc1.bias": bank.fc1_bias, "fc2.weight": bank.fc2_weight,
                   "fc2.bias": bank.fc2_bias, "vlm_norm.weight": bank.norm_weight, "vlm_norm.bias": bank.norm_bias}
        state.update({prefix + name: value[index] for name, value in tensors.items()})
    return {key: value.detach().clone() for key, value in state.items()}


def test_independent_projectors_load_one_per_pair(tiny_session, tmp_path):
    run_dir = save_run(tiny_session, tmp_path / "naive", {"share_projector": False, "matryoshka": False}, (1,))
    _, saved = run_checkpoints(run_dir)
    rocket = read_run_config(run_dir).rocket
    objective = checkpoint_objective(saved[0].path, rocket)
    stored = load_file(str(saved[0].path / TRAINABLE_NAME))["objective.projectors.fc1_weight"]  # [pairs, H, Ds]
    assert objective.projectors.num_projectors == stored.shape[0] == 2
    for pair in range(2):
        assert torch.equal(objective.projectors.fc1_weight[objective.projector_index(pair, 0)], stored[pair])
    similarity = weight_similarity(objective)
    assert similarity[0, 1].abs() < 0.1 and torch.allclose(similarity.diagonal(), torch.ones(2, dtype=torch.float64))
    with pytest.raises(ConfigError, match="do not fit its run's rocket section"):  # read as one shared projector
        checkpoint_objective(saved[0].path, RocketConfig(**{**rocket.__dict__, "share_projector": True}))


def test_shared_projector_layouts_compare_the_pairs_widths(tiny_session, tmp_path):
    run_dir = save_run(tiny_session, tmp_path / "shared", {"matryoshka": False}, (1,))
    _, saved = run_checkpoints(run_dir)
    shared = checkpoint_objective(saved[0].path, read_run_config(run_dir).rocket)
    assert shared.projectors.num_projectors == 1
    assert torch.allclose(weight_similarity(shared), torch.ones(2, 2, dtype=torch.float64))  # the same weights
    matryoshka = checkpoint_objective(saved[0].path, RocketConfig(**{**shared.config.__dict__, "matryoshka": True}))
    nested = weight_similarity(matryoshka)[0, 1]  # pair 0 runs the first 25 of the 128 hidden units
    assert 0.2 < nested < 0.9


def test_release_files_load_by_their_layout(tmp_path):
    for share in (True, False):
        config = RocketConfig(student_layers=[1, 2, 3], teacher_layers=[0, 1, 2], share_projector=share,
                              matryoshka=share, hidden_dim=32)
        objective = RocketObjective(config, student_dim=16, teacher_dim=8)
        path = tmp_path / f"align_projectors--{share}.pt"
        torch.save(_release_state_dict(objective), path)
        loaded = release_objective(path, config)
        assert torch.equal(loaded.projectors.fc1_weight, objective.projectors.fc1_weight)
        off_diagonal = weight_similarity(loaded)[0, 1:]
        assert (off_diagonal.abs() < 0.3).all() if not share else (off_diagonal > 0.2).all()
    with pytest.raises(ConfigError, match="holds independent projectors"):
        release_objective(path, RocketConfig(**{**config.__dict__, "share_projector": True}))


def test_outputs_and_weights_over_saved_steps(tiny_session, rocket_run):
    run_dir, saved = run_checkpoints(rocket_run)
    record = projector_record(tiny_session, Subject(read_run_config(run_dir), run_dir, saved), num_batches=1)
    assert record["layout"] == "rocket" and record["widths"] == [25, 128] and record["projectors"] == 1
    assert [step["step"] for step in record["steps"]] == [3, 7]
    for step in record["steps"]:
        for name in ("weights", "outputs", "inputs", "teacher"):
            matrix = torch.tensor(step[name])
            assert matrix.shape == (2, 2) and torch.allclose(matrix.diagonal(), torch.ones(2, dtype=matrix.dtype),
                                                             atol=1e-5)
        assert all(-1.0 <= value <= 1.0 for value in step["alignment"])
    first, last = record["steps"]
    assert first["outputs"] != last["outputs"] and first["inputs"] == last["inputs"]  # only the projector trained
