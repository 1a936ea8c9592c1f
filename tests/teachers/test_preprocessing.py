"""Student images -> teacher frames: format conversion, range checks, VGGT crop-mode resize."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from rocket_openvla.teachers.preprocessing import check_unit_range, resize_for_teacher, to_unit_images

from .helpers import OPENVLA_NORMALIZATION, openvla_pixel_values


def test_openvla_normalisation_round_trips_to_unit_images():
    images = torch.rand(2, 3, 3, 20, 24)
    unit = to_unit_images(openvla_pixel_values(images), "openvla", num_cameras=3,
                          pixel_normalization=OPENVLA_NORMALIZATION)
    torch.testing.assert_close(unit, images, atol=1e-6, rtol=0)
    check_unit_range(unit, "openvla")


def test_openvla_inverts_exactly_the_given_normalisation():
    images = torch.rand(1, 2, 3, 8, 8)
    custom = ((0.4, 0.5, 0.6), (0.2, 0.25, 0.3))
    pixel_values = torch.cat([(images - torch.tensor(custom[0]).view(3, 1, 1)) / torch.tensor(custom[1]).view(3, 1, 1),
                              images * 2 - 1], dim=2).flatten(1, 2)
    torch.testing.assert_close(to_unit_images(pixel_values, "openvla", 2, custom), images, atol=1e-6, rtol=0)
    assert (to_unit_images(pixel_values, "openvla", 2, OPENVLA_NORMALIZATION) - images).abs().max() > 0.05
    with pytest.raises(ValueError, match="needs pixel_normalization"):
        to_unit_images(pixel_values, "openvla", 2)


def test_pm1_and_unit_formats():
    images = torch.rand(1, 2, 3, 8, 8)
    torch.testing.assert_close(to_unit_images(images * 2 - 1, "pm1", 2), images, atol=1e-6, rtol=0)
    assert torch.equal(to_unit_images(images, "unit", 2), images)
    assert to_unit_images(images.to(torch.bfloat16), "unit", 2).dtype == torch.float32


@pytest.mark.parametrize(
    ("shape", "input_format", "cameras", "message"),
    [
        ((2, 12, 8, 8), "openvla", 1, r"\[B, 6, H, W\] for num_cameras=1"),
        ((2, 3, 8, 8), "openvla", 1, r"\[B, 6, H, W\]"),
        ((2, 3, 3, 8, 8), "unit", 2, "num_cameras=2"),
        ((2, 2, 8, 8), "pm1", 2, "num_cameras=2"),
        ((2, 2, 3, 8, 8), "rgb", 2, "input_format='rgb' is not supported"),
    ],
)
def test_wrong_layout_or_camera_count_is_rejected(shape, input_format, cameras, message):
    with pytest.raises(ValueError, match=message):
        to_unit_images(torch.zeros(shape), input_format, cameras, OPENVLA_NORMALIZATION)


def test_minus_one_to_one_images_declared_unit_are_detected():
    images = torch.rand(1, 2, 3, 8, 8) * 2 - 1
    with pytest.raises(ValueError, match="look like \\[-1, 1\\] images; use input_format='pm1'"):
        check_unit_range(to_unit_images(images, "unit", 2), "unit")


def test_byte_range_images_are_detected():
    images = torch.randint(0, 256, (1, 1, 3, 8, 8)).float()
    with pytest.raises(ValueError, match="divide by 255"):
        check_unit_range(to_unit_images(images, "unit", 1), "unit")
    with pytest.raises(ValueError, match="divide by 255"):
        check_unit_range(to_unit_images(images, "pm1", 1), "pm1")


def test_pixel_values_outside_the_dino_normalised_range_are_detected():
    pixel_values = 2.5 + torch.rand(1, 6, 8, 8)  # un-normalises to about [1.06, 1.5]
    with pytest.raises(ValueError, match="not DINOv2/ImageNet-normalised"):
        check_unit_range(to_unit_images(pixel_values, "openvla", 1, OPENVLA_NORMALIZATION), "openvla")


def test_all_positive_pm1_batch_warns():
    with pytest.warns(UserWarning, match="use input_format='unit'"):
        check_unit_range(to_unit_images(torch.rand(1, 1, 3, 8, 8), "pm1", 1), "pm1")


def test_square_input_is_bicubically_resized_to_square():
    images = torch.rand(2, 2, 3, 224, 224)
    resized = resize_for_teacher(images, image_size=518, patch_size=14)
    expected = F.interpolate(images.flatten(0, 1), size=(518, 518), mode="bicubic", align_corners=False)
    assert torch.equal(resized, expected.view(2, 2, 3, 518, 518))


def test_wide_input_keeps_aspect_rounded_to_patches():
    resized = resize_for_teacher(torch.rand(1, 1, 3, 100, 300), image_size=518, patch_size=14)
    assert resized.shape[-2:] == (168, 518)  # round(100 * 518 / 300 / 14) = 12 patches


def test_tall_input_is_centre_cropped():
    images = torch.rand(1, 1, 3, 448, 224)
    resized = resize_for_teacher(images, image_size=518, patch_size=14)
    full = F.interpolate(images[0], size=(1036, 518), mode="bicubic", align_corners=False)
    assert torch.equal(resized[0], full[..., 259 : 259 + 518, :])


def test_input_at_teacher_size_is_untouched():
    images = torch.rand(1, 2, 3, 42, 42)
    assert resize_for_teacher(images, image_size=42, patch_size=14) is images
