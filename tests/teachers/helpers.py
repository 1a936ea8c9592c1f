"""Helpers for teacher tests: golden data location, a tiny config, visible random weights."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from rocket_openvla.teachers.vggt import VGGTAggregatorConfig
from rocket_openvla.teachers.vggt.layers import LayerScale
from tests.fixtures import VGGT_TINY

REPO_ROOT = Path(__file__).resolve().parents[2]
GOLDEN_VGGT = VGGT_TINY

# What the published OpenVLA processor normalises the DINOv2 half with (ImageNet mean/std rounded to bfloat16).
OPENVLA_NORMALIZATION = ((0.484375, 0.455078125, 0.40625), (0.228515625, 0.2236328125, 0.224609375))
OPENVLA = dict(input_format="openvla", pixel_normalization=OPENVLA_NORMALIZATION)

# 28 px images -> 2x2 patch grid at patch 14; pos embed trained for 3x3 (42 px).
TINY = VGGTAggregatorConfig(img_size=42, embed_dim=32, depth=3, num_heads=2, patch_embed_depth=1)


@torch.no_grad()
def randomize_(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every tensor a distinct, clearly non-default value (as the golden data does), so mistakes show:
    matrices N(0, 1/fan_in), norm weights 1 + 0.1 N, LayerScale U(0.5, 1), free tokens N(0, 0.5^2), biases 0.05 N."""
    generator = torch.Generator().manual_seed(seed)

    def normal_(tensor: torch.Tensor, std: float, mean: float = 0.0) -> None:
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * std + mean)

    for sub in module.modules():
        if isinstance(sub, (nn.Linear, nn.Conv2d)):
            normal_(sub.weight, 1 / math.sqrt(sub.weight[0].numel()))
            normal_(sub.bias, 0.05)
        elif isinstance(sub, nn.LayerNorm):
            normal_(sub.weight, 0.1, mean=1.0)
            normal_(sub.bias, 0.05)
        elif isinstance(sub, LayerScale):
            sub.gamma.copy_(0.5 + 0.5 * torch.rand(sub.gamma.shape, generator=generator))
        else:  # the free tensors of the aggregator and the patch embedder: tokens, position embedding
            for param in sub.parameters(recurse=False):
                normal_(param, 0.5)
    return module


def openvla_pixel_values(images: torch.Tensor) -> torch.Tensor:
    """``[B, V, 3, H, W]`` in [0, 1] -> Prismatic dinosiglip ``[B, 6V, H, W]`` (DINOv2 half, SigLIP half)."""
    mean = torch.tensor(OPENVLA_NORMALIZATION[0]).view(1, 1, 3, 1, 1)
    std = torch.tensor(OPENVLA_NORMALIZATION[1]).view(1, 1, 3, 1, 1)
    per_camera = torch.cat([(images - mean) / std, (images - 0.5) / 0.5], dim=2)
    return per_camera.flatten(1, 2)
