"""Configuration of the VGGT aggregator (the part of VGGT whose block outputs ROCKET aligns to)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class VGGTAggregatorConfig:
    """Architecture of a VGGT aggregator; field names follow the upstream ``Aggregator`` constructor.

    ``patch_embed_depth`` is the depth of the DINOv2 ViT/14-with-registers patch embedder (24 = ViT-L, as in
    VGGT-1B); the embedder shares ``embed_dim``, ``num_heads``, ``mlp_ratio`` and ``num_register_tokens`` with
    the aggregator.
    """

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    qk_norm: bool = True
    rope_freq: float = 100
    init_values: float = 0.01
    patch_embed_depth: int = 24

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise ValueError(
                f"VGGTAggregatorConfig.img_size={self.img_size} is not a multiple of patch_size={self.patch_size}; "
                "choose an img_size divisible by the patch size (518 = 37 * 14 for VGGT-1B)."
            )
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"VGGTAggregatorConfig.embed_dim={self.embed_dim} is not divisible by num_heads={self.num_heads}."
            )
        if (self.embed_dim // self.num_heads) % 4:
            raise ValueError(
                f"VGGTAggregatorConfig: head_dim={self.embed_dim // self.num_heads} must be a multiple of 4 for the "
                "2-D rotary embedding (two halves, each rotated in pairs); change embed_dim or num_heads."
            )
        if self.rope_freq <= 0:
            raise ValueError(f"VGGTAggregatorConfig.rope_freq={self.rope_freq} must be positive.")
        for name in ("depth", "patch_embed_depth", "num_heads", "num_register_tokens"):
            if getattr(self, name) < 1:
                raise ValueError(f"VGGTAggregatorConfig.{name}={getattr(self, name)} must be at least 1.")

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token in each frame: after 1 camera and ``num_register_tokens`` register tokens."""
        return 1 + self.num_register_tokens

    @property
    def feature_dim(self) -> int:
        """Channels of one block output: frame-attention and global-attention outputs concatenated."""
        return 2 * self.embed_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


VGGT_1B = VGGTAggregatorConfig()
"""The configuration of the released ``facebook/VGGT-1B`` checkpoint."""

VGGT_TINY = VGGTAggregatorConfig(
    img_size=224, embed_dim=64, depth=4, num_heads=4, patch_embed_depth=2
)
"""A tiny random configuration for CPU tests and the quickstart: 16x16 patches per frame at 224 px."""
