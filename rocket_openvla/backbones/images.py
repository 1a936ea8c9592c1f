"""Camera images as every backbone's processor receives them: uint8 `[V, H, W, 3]` frames, resized on the CPU."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def unit_rgb(images: np.ndarray | torch.Tensor, size: int) -> torch.Tensor:
    """Camera images uint8 `[V, H, W, 3]` -> float32 `[V, 3, size, size]` in [0, 1].

    Resized with torch's antialiased bicubic, which follows PIL's filter (within 1-2 grey levels); the identity
    when the images already have that size (the data pipeline resizes them already).
    """
    if isinstance(images, np.ndarray):  # copies negative-stride views (flipped frames) and read-only buffers only
        images = torch.from_numpy(np.require(images, requirements=("C_CONTIGUOUS", "WRITEABLE")))
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
        raise ValueError(
            f"images must be uint8 [num_cameras, H, W, 3], got {images.dtype} {tuple(images.shape)}; "
            "pass RGB frames as the data pipeline yields them"
        )
    images = images.permute(0, 3, 1, 2)
    if images.shape[-2:] != (size, size):
        images = F.interpolate(images, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return images.float() / 255.0
