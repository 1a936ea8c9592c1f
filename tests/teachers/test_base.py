"""The Teacher protocol and the shared frozen pipeline."""

from __future__ import annotations

import pytest
import torch
from transformers import Dinov2Config, Dinov2Model

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.teachers import HFVisionTeacher, Teacher, TeacherPooling, VGGTTeacher

from .helpers import OPENVLA, TINY, openvla_pixel_values


@pytest.fixture
def teachers() -> list[Teacher]:
    hf_model = Dinov2Model(
        Dinov2Config(image_size=42, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32)
    )
    return [
        VGGTTeacher.random([0, -1], config=TINY, grid=(2, 2), num_cameras=2, input_format="pm1"),
        HFVisionTeacher(hf_model, [0, -1], grid=(2, 2), num_cameras=2, input_format="pm1"),
    ]


def test_every_teacher_satisfies_the_protocol(teachers):
    images = torch.rand(3, 2, 3, 28, 28) * 2 - 1
    for teacher in teachers:
        assert isinstance(teacher, Teacher)
        targets = teacher(images)
        assert len(targets) == len(teacher.layers) == 2
        for target in targets:
            assert target.shape == (3, sum(gh * gw for gh, gw in teacher.grids), teacher.feature_dim)
            assert target.dtype == torch.float32 and not target.requires_grad


def test_range_is_checked_on_the_first_call_only(teachers):
    teacher = teachers[0]
    teacher(torch.rand(1, 2, 3, 28, 28) * 2 - 1)
    teacher(torch.rand(1, 2, 3, 28, 28) * 9)  # no host sync after the first batch, so no check either


def test_unknown_pooling_mode_is_rejected():
    with pytest.raises(ValueError, match="TeacherPooling.mode='nearest' is not supported"):
        TeacherPooling(mode="nearest")


def test_targets_feed_the_rocket_objective():
    config = RocketConfig(student_layers=[1, 2], teacher_layers=[0, -1], pooling="area", pos_embed_scale=0.5)
    pooling = TeacherPooling.from_rocket_config(config)
    teacher = VGGTTeacher.random(config.teacher_layers, config=TINY, grid=(2, 2), num_cameras=2, pooling=pooling,
                                 **OPENVLA)
    objective = RocketObjective(config, student_dim=24, teacher_dim=teacher.feature_dim)
    student = [torch.randn(3, 2 * 4, 24, requires_grad=True) for _ in config.student_layers]
    images = torch.rand(3, 2, 3, 28, 28)

    loss = objective(student, teacher(openvla_pixel_values(images))).loss
    loss.backward()

    assert pooling == TeacherPooling(pos_embed=True, pos_embed_scale=0.5, mode="area")
    assert torch.isfinite(loss) and all(s.grad is not None and s.grad.abs().sum() > 0 for s in student)
