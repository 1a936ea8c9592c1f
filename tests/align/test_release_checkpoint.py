"""Loading the release's `align_projectors--*.pt` layout: ModuleList(pairs) of ModuleList(members) of projectors."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rocket_openvla.align import RocketConfig, RocketObjective

STUDENT_DIM, TEACHER_DIM, PAIRS = 12, 8, 3


class ReleaseLayoutProjector(nn.Module):
    """Parameter layout of the release's AlignProjector (vlm_norm, fc1, fc2), used to build test state dicts."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.width = width
        self.vlm_norm = nn.LayerNorm(STUDENT_DIM)
        self.fc1 = nn.Linear(STUDENT_DIM, TEACHER_DIM)
        self.fc2 = nn.Linear(TEACHER_DIM, TEACHER_DIM)
        for parameter in self.parameters():
            nn.init.normal_(parameter, std=0.3)

    def loss(self, states, target):
        hidden = F.gelu(F.linear(self.vlm_norm(states), self.fc1.weight[: self.width], self.fc1.bias[: self.width]))
        projected = F.linear(hidden, self.fc2.weight[:, : self.width], self.fc2.bias)
        cos = (F.normalize(projected, dim=-1) * F.normalize(target, dim=-1)).sum(-1)
        return (1 - cos.mean(-1)).mean()


def release_modules(shared: bool, widths: list[int], members: int = 1) -> nn.ModuleList:
    torch.manual_seed(0)
    if shared:
        pool = nn.ModuleList([ReleaseLayoutProjector(0) for _ in range(members)])
        return nn.ModuleList([pool for _ in widths])
    return nn.ModuleList([nn.ModuleList([ReleaseLayoutProjector(w) for _ in range(members)]) for w in widths])


def release_loss(modules: nn.ModuleList, widths, student, teacher) -> torch.Tensor:
    total = 0
    for pair, members in enumerate(modules):
        pair_loss = 0
        for projector in members:
            projector.width = widths[pair]
            pair_loss = pair_loss + projector.loss(student[pair], teacher[pair])
        total = total + pair_loss / len(members)
    return total / len(modules)


def inputs():
    generator = torch.Generator().manual_seed(3)
    student = [torch.randn(2, 5, STUDENT_DIM, generator=generator) for _ in range(PAIRS)]
    teacher = [torch.randn(2, 5, TEACHER_DIM, generator=generator) for _ in range(PAIRS)]
    return student, teacher


@pytest.mark.parametrize(("shared", "members", "ddp_prefix"), [(True, 1, True), (True, 2, False), (False, 1, True)])
def test_release_state_dict_reproduces_release_loss(shared, members, ddp_prefix):
    config = RocketConfig(student_layers=[1, 2, 3], teacher_layers=[0, 1, 2], share_projector=shared,
                          ensemble_size=members, hidden_dim=TEACHER_DIM,
                          width_ratios=None if shared else [0.2] * PAIRS)
    objective = RocketObjective(config, STUDENT_DIM, TEACHER_DIM)
    modules = release_modules(shared, objective.widths, members)
    state_dict = modules.state_dict()
    if ddp_prefix:
        state_dict = {f"module.{key}": value for key, value in state_dict.items()}
    objective.load_reference_state_dict(state_dict)
    student, teacher = inputs()
    expected = release_loss(modules, objective.widths, student, teacher)
    torch.testing.assert_close(objective(student, teacher).loss, expected, atol=1e-6, rtol=0)


def test_independent_state_dict_refused_by_shared_config():
    config = RocketConfig(student_layers=[1, 2, 3], teacher_layers=[0, 1, 2], hidden_dim=TEACHER_DIM)
    objective = RocketObjective(config, STUDENT_DIM, TEACHER_DIM)
    with pytest.raises(ValueError, match="share_projector=false"):
        objective.load_reference_state_dict(release_modules(False, objective.widths).state_dict())


def test_wrong_pair_count_and_missing_norm_and_foreign_keys():
    config = RocketConfig(student_layers=[1, 2], teacher_layers=[0, 1], hidden_dim=TEACHER_DIM)
    objective = RocketObjective(config, STUDENT_DIM, TEACHER_DIM)
    state_dict = release_modules(True, [1, 2, 3]).state_dict()
    with pytest.raises(ValueError, match="match rocket.student_layers"):
        objective.load_reference_state_dict(state_dict)
    two_pairs = {k: v for k, v in state_dict.items() if not k.startswith("2.")}
    without_norm = {k: v for k, v in two_pairs.items() if "vlm_norm" not in k}
    with pytest.raises(ValueError, match="rocket.input_norm=True"):
        objective.load_reference_state_dict(without_norm)
    with pytest.raises(ValueError, match="unexpected keys"):
        objective.load_reference_state_dict({**two_pairs, "action_head.fc.weight": torch.zeros(1)})
    with pytest.raises(ValueError, match="missing"):
        objective.load_reference_state_dict({k: v for k, v in two_pairs.items() if not k.endswith("fc2.bias")})


def test_wrong_hidden_dim_is_named():
    config = RocketConfig(student_layers=[1, 2, 3], teacher_layers=[0, 1, 2], hidden_dim=2 * TEACHER_DIM)
    objective = RocketObjective(config, STUDENT_DIM, TEACHER_DIM)
    with pytest.raises(ValueError, match="rocket.hidden_dim"):
        objective.load_reference_state_dict(release_modules(True, [1, 2, 3]).state_dict())
