"""VGGTTeacher: student images in, pooled per-layer targets out, equal to the documented pipeline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rocket_openvla.align import pool_teacher_tokens
from rocket_openvla.teachers import VGGT_TINY, Teacher, TeacherPooling, VGGTTeacher

from ..helpers import OPENVLA, OPENVLA_NORMALIZATION, TINY, openvla_pixel_values


def _manual_targets(aggregator, images_unit, layers, grid, pooling):
    """The pipeline spelled out: bicubic to the teacher size, aggregator, drop special tokens, pool."""
    batch, cameras = images_unit.shape[:2]
    frames = F.interpolate(images_unit.flatten(0, 1), size=(42, 42), mode="bicubic", align_corners=False)
    with torch.no_grad():
        outputs, start = aggregator(frames.view(batch, cameras, 3, 42, 42), layers)
    return [
        pool_teacher_tokens(
            out[:, :, start:], (3, 3), grid, (42, 42), pooling.pos_embed, pooling.pos_embed_scale, pooling.mode
        )
        for out in outputs
    ]


@pytest.mark.parametrize(
    "pooling", [TeacherPooling(), TeacherPooling(pos_embed=False, mode="area"), TeacherPooling(pos_embed_scale=1.0)]
)
def test_targets_follow_the_documented_pipeline(tiny_aggregator, pooling):
    aggregator = tiny_aggregator()
    images = torch.rand(2, 2, 3, 28, 28)
    teacher = VGGTTeacher(aggregator, layers=[-1, 0], grid=(2, 2), num_cameras=2, pooling=pooling, **OPENVLA)

    targets = teacher(openvla_pixel_values(images))

    expected = _manual_targets(aggregator, images, [2, 0], (2, 2), pooling)
    assert teacher.layers == [2, 0] and teacher.feature_dim == 2 * TINY.embed_dim and teacher.grids == ((2, 2), (2, 2))
    for target, reference in zip(targets, expected, strict=True):
        assert target.shape == (2, 2 * 4, 2 * TINY.embed_dim) and target.dtype == torch.float32
        torch.testing.assert_close(target, reference, atol=1e-5, rtol=0)


def test_cameras_with_different_grids_are_pooled_each_to_its_own(tiny_aggregator):
    aggregator = tiny_aggregator()
    images = torch.rand(2, 3, 3, 28, 28)
    grids = [(2, 2), (3, 3), (2, 2)]
    mixed = VGGTTeacher(aggregator, [1], grid=grids, num_cameras=3)(images)[0]
    uniform = {grid: VGGTTeacher(aggregator, [1], grid=grid, num_cameras=3)(images)[0] for grid in set(grids)}
    assert mixed.shape == (2, 4 + 9 + 4, 2 * TINY.embed_dim)
    torch.testing.assert_close(mixed[:, :4], uniform[(2, 2)][:, :4])
    torch.testing.assert_close(mixed[:, 4:13], uniform[(3, 3)][:, 9:18])
    torch.testing.assert_close(mixed[:, 13:], uniform[(2, 2)][:, 8:])
    with pytest.raises(ValueError, match="one per camera"):
        VGGTTeacher(aggregator, [1], grid=grids, num_cameras=2)


def test_all_input_formats_give_the_same_targets(tiny_aggregator):
    aggregator = tiny_aggregator()
    images = torch.rand(1, 3, 3, 28, 28)
    targets = {
        input_format: VGGTTeacher(aggregator, [1], grid=(2, 2), num_cameras=3, input_format=input_format,
                                  pixel_normalization=OPENVLA_NORMALIZATION)(pixels)[0]
        for input_format, pixels in [
            ("openvla", openvla_pixel_values(images)),
            ("pm1", images * 2 - 1),
            ("unit", images),
        ]
    }
    torch.testing.assert_close(targets["openvla"], targets["unit"], atol=1e-5, rtol=0)
    torch.testing.assert_close(targets["pm1"], targets["unit"], atol=1e-5, rtol=0)


def test_from_official_checkpoint_matches_the_source_model(tiny_aggregator, tmp_path):
    source = tiny_aggregator(seed=5)
    state = {f"aggregator.{key}": value for key, value in source.state_dict().items()}
    state["camera_head.trunk.0.norm1.weight"] = torch.ones(4)
    torch.save(state, tmp_path / "model.pt")
    kwargs = dict(layers=[0, 2], grid=(3, 3), num_cameras=2, input_format="unit")
    images = torch.rand(2, 2, 3, 42, 42)

    loaded = VGGTTeacher.from_checkpoint(tmp_path / "model.pt", config=TINY, **kwargs)

    for target, reference in zip(loaded(images), VGGTTeacher(source, **kwargs)(images), strict=True):
        assert torch.equal(target, reference)
    assert not any(p.requires_grad for p in loaded.parameters())
    assert not loaded.training


def test_targets_carry_no_gradient_and_teacher_stays_in_eval():
    teacher = VGGTTeacher.random([0], config=TINY, grid=(3, 3), input_format="unit")
    teacher.train()
    images = torch.rand(1, 1, 3, 42, 42, requires_grad=True)
    (target,) = teacher(images)
    assert not target.requires_grad
    assert not teacher.training and not teacher.aggregator.training
    assert isinstance(teacher, Teacher)


def test_random_teacher_is_reproducible_by_seed():
    first, same, other = (VGGTTeacher.random([0], config=TINY, seed=seed) for seed in (1, 1, 2))
    for key, tensor in first.state_dict().items():
        assert torch.equal(tensor, same.state_dict()[key])
    assert not torch.equal(first.aggregator.camera_token, other.aggregator.camera_token)


def test_duplicate_layers_are_computed_once_and_returned_in_order(tiny_aggregator):
    teacher = VGGTTeacher(tiny_aggregator(), [2, 0, -1], grid=(3, 3), input_format="unit")
    targets = teacher(torch.rand(1, 1, 3, 42, 42))
    assert len(targets) == 3 and torch.equal(targets[0], targets[2])
    assert not torch.equal(targets[0], targets[1])


def test_minus_one_to_one_images_declared_unit_fail_on_first_call(tiny_aggregator):
    teacher = VGGTTeacher(tiny_aggregator(), [0], grid=(3, 3), input_format="unit")
    with pytest.raises(ValueError, match="input_format='pm1'"):
        teacher(torch.rand(1, 1, 3, 42, 42) * 2 - 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(layers=[3]), "teacher layers: index 3 is out of range for 3 entries"),
        (dict(layers=[]), "teacher layers is empty"),
        (dict(layers=[0], grid=(0, 16)), "teacher grid=\\(0, 16\\)"),
        (dict(layers=[0], num_cameras=0), "num_cameras=0"),
        (dict(layers=[0], image_size=50), "image_size=50 is not a multiple"),
        (dict(layers=[0], input_format="bgr"), "input_format='bgr' is not supported"),
        (dict(layers=[0], input_format="openvla"), "needs pixel_normalization=\\(mean, std\\)"),
    ],
)
def test_bad_teacher_settings_are_rejected(tiny_aggregator, kwargs, message):
    with pytest.raises(ValueError, match=message):
        VGGTTeacher(tiny_aggregator(), **kwargs)


def test_wrong_camera_count_is_rejected(tiny_aggregator):
    teacher = VGGTTeacher(tiny_aggregator(), [0], grid=(3, 3), num_cameras=2, **OPENVLA)
    with pytest.raises(ValueError, match="num_cameras=2"):
        teacher(torch.zeros(1, 6, 28, 28))


def test_tiny_preset_serves_an_openvla_batch_on_the_student_grid():
    teacher = VGGTTeacher.random([1, -1], grid=(16, 16), num_cameras=2, **OPENVLA)  # VGGT_TINY: 224 px, 16x16
    targets = teacher(openvla_pixel_values(torch.rand(1, 2, 3, 224, 224)))
    assert [tuple(t.shape) for t in targets] == [(1, 2 * 256, teacher.feature_dim)] * 2
    assert teacher.layers == [1, VGGT_TINY.depth - 1]
