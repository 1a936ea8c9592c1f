"""Turn the student's images into teacher frames: per camera, in camera order, in [0, 1], at teacher resolution.

Input formats (``input_format``):
- ``"openvla"``: OpenVLA / Prismatic "dinosiglip" ``pixel_values [B, 6V, H, W]``; per camera 6 channels, the
  first 3 normalised for DINOv2, the last 3 for SigLIP. The DINOv2 half is un-normalised with exactly the
  ``pixel_normalization`` (mean, std) the student's processor applied (the published OpenVLA checkpoints use
  bfloat16-rounded ImageNet constants), so the teacher sees the pixels the student saw.
- ``"pm1"``: ``[B, V, 3, H, W]`` in [-1, 1] (pi0-style), mapped with ``x / 2 + 0.5``.
- ``"unit"``: ``[B, V, 3, H, W]`` in [0, 1].

Resizing follows VGGT's "crop" rule (as the ROCKET release does for OpenVLA): width -> ``image_size``,
height -> the nearest multiple of the patch size keeping the aspect ratio, centre-cropped to ``image_size`` if
taller; PyTorch bicubic, ``align_corners=False``, no antialias, no clamp. Square inputs become square.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from rocket_openvla.errors import ConfigError

InputFormat = Literal["openvla", "pm1", "unit"]
INPUT_FORMATS: tuple[str, ...] = ("openvla", "pm1", "unit")
# ImageNet mean/std: the input normalisation of the teachers' own backbones (VGGT's aggregator, DINOv2).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PixelNormalization = tuple[Sequence[float], Sequence[float]]  # (mean, std) per RGB channel
OPENVLA_CHANNELS_PER_CAMERA = 6
RANGE_TOLERANCE = 0.02
"""Slack on [0, 1] for resampling overshoot and float rounding of the un-normalisation."""


def check_input_format(input_format: str, pixel_normalization: PixelNormalization | None = None) -> None:
    if input_format not in INPUT_FORMATS:
        raise ConfigError(f"teacher input_format={input_format!r} is not supported; choose one of {INPUT_FORMATS}.")
    if input_format == "openvla" and pixel_normalization is None:
        raise ConfigError(
            "teacher input_format='openvla' needs pixel_normalization=(mean, std) of the DINOv2 half of pixel_values, "
            "as the student's processor applied it (OpenVLAProcessor.normalization.means[0] / .stds[0])"
        )


def to_unit_images(
    images: Tensor, input_format: InputFormat, num_cameras: int, pixel_normalization: PixelNormalization | None = None
) -> Tensor:
    """Student images -> ``[B, V, 3, H, W]`` float32 in [0, 1] (not range-checked; see ``check_unit_range``).

    ``pixel_normalization``: the (mean, std) to undo for ``"openvla"`` (required there, unused otherwise).
    """
    check_input_format(input_format, pixel_normalization)
    if input_format == "openvla":
        if images.dim() != 4 or images.shape[1] != OPENVLA_CHANNELS_PER_CAMERA * num_cameras:
            raise ValueError(
                f"openvla pixel_values must be [B, {OPENVLA_CHANNELS_PER_CAMERA}*num_cameras, H, W] = "
                f"[B, {OPENVLA_CHANNELS_PER_CAMERA * num_cameras}, H, W] for num_cameras={num_cameras}, got "
                f"{tuple(images.shape)}; set num_cameras to the number of images per sample."
            )
        batch, _, height, width = images.shape
        dino = images.float().reshape(batch, num_cameras, OPENVLA_CHANNELS_PER_CAMERA, height, width)
        # Python-scalar constants: no host-to-device copy per call.
        mean, std = pixel_normalization
        channels = [dino[:, :, c] * float(std[c]) + float(mean[c]) for c in range(3)]
        return torch.stack(channels, dim=2)
    if images.dim() != 5 or images.shape[1] != num_cameras or images.shape[2] != 3:
        raise ValueError(
            f"{input_format} images must be [B, num_cameras={num_cameras}, 3, H, W], got {tuple(images.shape)}; "
            "stack the cameras on dim 1 in camera order and set num_cameras accordingly."
        )
    return images.float() / 2 + 0.5 if input_format == "pm1" else images.float()


def check_unit_range(unit: Tensor, input_format: InputFormat) -> None:
    """Fail if converted images leave [0, 1] (one host sync: call once, not per step).

    Catches the classic mix-ups: [-1, 1] images declared as ``"unit"`` (the ROCKET JAX path feeds VGGT such
    images), 0..255 images, and ``pixel_values`` that are not DINOv2-normalised.
    """
    low, high = (value.item() for value in torch.aminmax(unit))
    if low >= -RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
        if input_format == "pm1" and low >= 0.5 - RANGE_TOLERANCE:
            warnings.warn(
                "teacher input_format='pm1' but no pixel in the batch is negative: are these [0, 1] images? "
                "If so use input_format='unit'.",
                stacklevel=3,
            )
        return
    seen = f"values span [{low:.3f}, {high:.3f}] after conversion to [0, 1]"
    if input_format == "unit" and low >= -1 - RANGE_TOLERANCE and high <= 1 + RANGE_TOLERANCE:
        hint = "these look like [-1, 1] images; use input_format='pm1' (or pass x / 2 + 0.5)"
    elif high > 2:
        hint = "these look like 0..255 pixel values; divide by 255 (input_format='unit') first"
    elif input_format == "openvla":
        hint = "pixel_values are not DINOv2/ImageNet-normalised in channels 0:3 of each 6-channel camera block"
    else:
        hint = f"images are not in the range input_format={input_format!r} declares"
    raise ValueError(f"teacher images out of range: {seen}; {hint}.")


def crop_resize_shape(height: int, width: int, image_size: int, patch_size: int) -> tuple[int, int]:
    """Size before the centre crop: width ``image_size``, height rounded to a multiple of ``patch_size``
    (>= 1 patch)."""
    return max(1, round(height * image_size / width / patch_size)) * patch_size, image_size


def resize_for_teacher(images: Tensor, image_size: int, patch_size: int) -> Tensor:
    """``[B, V, 3, H, W]`` -> ``[B, V, 3, H', image_size]`` with ``H' <= image_size`` a multiple of ``patch_size``."""
    batch, cameras, channels, height, width = images.shape
    new_height, new_width = crop_resize_shape(height, width, image_size, patch_size)
    if (new_height, new_width) != (height, width):
        flat = images.reshape(batch * cameras, channels, height, width)
        flat = F.interpolate(flat, size=(new_height, new_width), mode="bicubic", align_corners=False)
        images = flat.reshape(batch, cameras, channels, new_height, new_width)
    if new_height > image_size:
        top = (new_height - image_size) // 2
        images = images[..., top : top + image_size, :]
    return images
