"""HFVisionTeacher on tiny real transformers models (DINOv2, DINOv2 with registers, Depth-Anything backbone)."""

from __future__ import annotations

import pytest
import torch
from transformers import (
    BitImageProcessor,
    DepthAnythingConfig,
    DepthAnythingForDepthEstimation,
    Dinov2Config,
    Dinov2Model,
    Dinov2WithRegistersConfig,
    Dinov2WithRegistersModel,
)

from rocket_openvla.align import pool_teacher_tokens
from rocket_openvla.teachers import HFVisionTeacher, TeacherPooling
from rocket_openvla.teachers.preprocessing import IMAGENET_MEAN, IMAGENET_STD

from .helpers import OPENVLA

SIZES = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=2, intermediate_size=64, patch_size=14)


def _dinov2(registers: int = 0, image_size: int = 42):
    torch.manual_seed(0)
    if registers:
        config = Dinov2WithRegistersConfig(image_size=image_size, num_register_tokens=registers, **SIZES)
        return Dinov2WithRegistersModel(config).eval()
    return Dinov2Model(Dinov2Config(image_size=image_size, **SIZES)).eval()


def _manual_targets(model, images, layer, mean, std, grid):
    batch, cameras = images.shape[:2]
    pixel_values = ((images - torch.tensor(mean).view(1, 1, 3, 1, 1)) / torch.tensor(std).view(1, 1, 3, 1, 1))
    with torch.no_grad():
        states = model(pixel_values=pixel_values.flatten(0, 1), output_hidden_states=True).hidden_states[layer]
    patches = states[:, -9:].reshape(batch, cameras, 9, -1)  # 3x3 patches at 42 px
    return pool_teacher_tokens(patches, (3, 3), grid, (42, 42), True, 0.1, "bilinear")


@pytest.mark.parametrize("registers", [0, 4])
def test_targets_drop_special_tokens_and_pool_chosen_hidden_states(registers):
    model = _dinov2(registers)
    images = torch.rand(2, 2, 3, 42, 42)
    teacher = HFVisionTeacher(model, layers=[-1, 1], grid=(2, 2), num_cameras=2, input_format="unit")

    targets = teacher(images)

    assert teacher.layers == [3, 1] and teacher.feature_dim == 32 and teacher.grids == ((2, 2), (2, 2))
    for target, layer in zip(targets, [3, 1], strict=True):
        assert target.shape == (2, 2 * 4, 32) and target.dtype == torch.float32
        expected = _manual_targets(model, images, layer, IMAGENET_MEAN, IMAGENET_STD, (2, 2))
        torch.testing.assert_close(target, expected, atol=1e-5, rtol=0)


def test_special_token_count_matters():
    """Dropping the wrong number of leading tokens would shift every patch: check against a shifted slice."""
    model = _dinov2(registers=4)
    images = torch.rand(1, 1, 3, 42, 42)
    (target,) = HFVisionTeacher(model, [2], grid=(3, 3), input_format="unit", pooling=TeacherPooling(False))(images)
    pixel_values = (images[0] - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    states = model(pixel_values=pixel_values, output_hidden_states=True).hidden_states[2].detach()
    torch.testing.assert_close(target[0], states[0, 5:], atol=1e-5, rtol=0)
    assert not torch.allclose(target[0], states[0, 4:-1], atol=1e-3)


def test_from_pretrained_reads_model_and_processor_normalisation(tmp_path):
    model = _dinov2()
    model.save_pretrained(tmp_path)
    BitImageProcessor(image_mean=[0.5, 0.5, 0.5], image_std=[0.25, 0.25, 0.25]).save_pretrained(tmp_path)
    images = torch.rand(1, 1, 3, 42, 42)

    teacher = HFVisionTeacher.from_pretrained(tmp_path, layers=[2], grid=(2, 2), input_format="unit")

    (target,) = teacher(images)
    expected = _manual_targets(model, images, 2, [0.5] * 3, [0.25] * 3, (2, 2))
    torch.testing.assert_close(target, expected, atol=1e-5, rtol=0)


def test_depth_anything_backbone_as_teacher():
    backbone_config = Dinov2Config(
        image_size=42, out_features=["stage1", "stage2", "stage3"], reshape_hidden_states=False, **SIZES
    )
    model = DepthAnythingForDepthEstimation(
        DepthAnythingConfig(
            backbone_config=backbone_config, neck_hidden_sizes=[8, 16, 32], reassemble_factors=[2, 1, 0.5],
            fusion_hidden_size=16, head_hidden_size=8, reassemble_hidden_size=32,
        )
    )
    teacher = HFVisionTeacher(model.backbone, layers=[3], grid=(2, 2), num_cameras=2, **OPENVLA)
    (target,) = teacher(torch.zeros(1, 12, 42, 42))
    assert target.shape == (1, 8, 32)


def test_layer_out_of_range_names_the_valid_range():
    with pytest.raises(ValueError, match=r"index 4 is out of range for 4 entries; use a value in \[-4, 3\]"):
        HFVisionTeacher(_dinov2(), layers=[4])
