"""Clean-room VGGT aggregator: DINOv2 patch embedding, then alternating frame / global attention blocks.

Every frame of a sequence becomes ``[camera, register x R, patches]`` tokens (P per frame). Block i runs
``frame_blocks[i]`` on each frame alone, then ``global_blocks[i]`` on all frames of the sequence at once; its
output is the concatenation of both results, ``[B, S, P, 2C]``. Frame 0 uses the first camera/register token
variant, frames 1..S-1 the second. State-dict keys equal the official checkpoint's ``aggregator.*`` keys.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor, nn

from rocket_openvla.align import resolve_layers
from rocket_openvla.teachers.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from rocket_openvla.teachers.vggt.config import VGGTAggregatorConfig
from rocket_openvla.teachers.vggt.dinov2 import DinoV2PatchEmbedder
from rocket_openvla.teachers.vggt.layers import Block
from rocket_openvla.teachers.vggt.rope import RotaryEmbedding2D, patch_positions

AGGREGATOR_NORM_EPS = 1e-5


class VGGTAggregator(nn.Module):
    """VGGT's feature aggregator; constructor arguments as upstream's ``Aggregator`` plus ``patch_embed_depth``."""

    def __init__(
        self,
        img_size: int = 518,
        patch_size: int = 14,
        embed_dim: int = 1024,
        depth: int = 24,
        num_heads: int = 16,
        mlp_ratio: float = 4.0,
        num_register_tokens: int = 4,
        qk_norm: bool = True,
        rope_freq: float = 100,
        init_values: float = 0.01,
        patch_embed_depth: int = 24,
    ) -> None:
        super().__init__()
        self.config = VGGTAggregatorConfig(
            img_size=img_size,
            patch_size=patch_size,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            num_register_tokens=num_register_tokens,
            qk_norm=qk_norm,
            rope_freq=rope_freq,
            init_values=init_values,
            patch_embed_depth=patch_embed_depth,
        )
        self.patch_start_idx = self.config.patch_start_idx
        self.camera_token = nn.Parameter(torch.empty(1, 2, 1, embed_dim))
        self.register_token = nn.Parameter(torch.empty(1, 2, num_register_tokens, embed_dim))
        self.patch_embed = DinoV2PatchEmbedder(
            img_size, patch_size, embed_dim, patch_embed_depth, num_heads, mlp_ratio, num_register_tokens
        )
        self.rope = RotaryEmbedding2D(base=rope_freq)

        def aggregator_block() -> Block:
            return Block(
                embed_dim, num_heads, mlp_ratio, init_values, AGGREGATOR_NORM_EPS, qk_norm=qk_norm, rope=self.rope
            )

        self.frame_blocks = nn.ModuleList(aggregator_block() for _ in range(depth))
        self.global_blocks = nn.ModuleList(aggregator_block() for _ in range(depth))
        for token in (self.camera_token, self.register_token):
            nn.init.trunc_normal_(token, std=0.02)
        self.reset_buffers()

    @classmethod
    def from_config(cls, config: VGGTAggregatorConfig) -> VGGTAggregator:
        return cls(**config.to_dict())

    def reset_buffers(self, device: torch.device | str | None = None) -> None:
        """(Re)create the non-persistent ImageNet mean/std buffers ``[1, 1, 3, 1, 1]``.

        Needed after loading weights into a meta-device model with ``assign=True``, which leaves them on meta.
        """
        for name, values in (("image_mean", IMAGENET_MEAN), ("image_std", IMAGENET_STD)):
            self.register_buffer(name, torch.tensor(values, device=device).view(1, 1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor, layers: Sequence[int] | None = None) -> tuple[list[Tensor], int]:
        """Run the aggregator up to the deepest requested block.

        Args:
            images: ``[B, S, 3, H, W]`` in [0, 1] (ImageNet-normalised here), H and W multiples of the patch size.
            layers: block indices (negatives Python-style); None = all blocks. Output order follows this list.

        Returns:
            ``(outputs, patch_start_idx)``: one ``[B, S, P, 2C]`` tensor per requested block, with
            ``P = patch_start_idx + (H/p)*(W/p)``; channels ``[:C]`` frame attention, ``[C:]`` global attention.
        """
        blocks = self.resolve_blocks(layers)
        outputs = dict(self.iter_blocks(images, blocks))
        return [outputs[index] for index in blocks], self.patch_start_idx

    def resolve_blocks(self, layers: Sequence[int] | None) -> list[int]:
        """Block indices with negatives resolved; None = all blocks."""
        depth = self.config.depth
        if layers is None:
            return list(range(depth))
        if not layers:
            raise ValueError("VGGTAggregator layers is empty; request at least one block index.")
        return resolve_layers(layers, depth, "VGGT teacher layers")

    def iter_blocks(self, images: Tensor, blocks: Sequence[int]) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(index, output [B, S, P, 2C])`` for each distinct block in ``blocks`` (non-negative), in depth order.

        Stops after the deepest requested block, and lets the caller consume each output before the next
        block runs (so only what the caller keeps stays alive).
        """
        self._check_images(images)
        batch, frames, _, height, width = images.shape
        grid = (height // self.config.patch_size, width // self.config.patch_size)

        normalized = (images - self.image_mean) / self.image_std
        patches = self.patch_embed(normalized.reshape(batch * frames, 3, height, width))
        camera = self._special_tokens(self.camera_token, batch, frames)
        registers = self._special_tokens(self.register_token, batch, frames)
        tokens = torch.cat([camera, registers, patches], dim=1)
        tokens_per_frame, dim = tokens.shape[1:]

        positions = patch_positions(*grid, num_special=self.patch_start_idx, device=images.device)
        frame_rope = self.rope.tables(positions, dim // self.config.num_heads)
        global_rope = (frame_rope[0].repeat(frames, 1), frame_rope[1].repeat(frames, 1))

        wanted = set(blocks)
        for index in range(max(wanted) + 1):
            tokens = self.frame_blocks[index](tokens.reshape(batch * frames, tokens_per_frame, dim), frame_rope)
            frame_out = tokens.reshape(batch, frames, tokens_per_frame, dim)
            tokens = self.global_blocks[index](tokens.reshape(batch, frames * tokens_per_frame, dim), global_rope)
            if index in wanted:
                global_out = tokens.reshape(batch, frames, tokens_per_frame, dim)
                yield index, torch.cat([frame_out, global_out], dim=-1)

    @staticmethod
    def _special_tokens(token: Tensor, batch: int, frames: int) -> Tensor:
        """``[1, 2, n, C]`` variants -> ``[B*S, n, C]``: variant 0 for frame 0, variant 1 for frames 1..S-1."""
        per_frame = torch.cat([token[:, :1], token[:, 1:].expand(-1, frames - 1, -1, -1)], dim=1)
        return per_frame.expand(batch, -1, -1, -1).reshape(batch * frames, *token.shape[2:])

    def _check_images(self, images: Tensor) -> None:
        if images.dim() != 5 or images.shape[2] != 3:
            raise ValueError(
                f"VGGTAggregator expects images [B, S, 3, H, W] in [0, 1], got shape {tuple(images.shape)}."
            )
        height, width = images.shape[-2:]
        patch = self.config.patch_size
        if height % patch or width % patch:
            raise ValueError(
                f"VGGTAggregator: image size {height}x{width} is not a multiple of patch_size={patch}; resize to "
                f"multiples of {patch} (e.g. {self.config.img_size}x{self.config.img_size})."
            )
