"""DINOv2 ViT/14 with register tokens, as VGGT builds it to embed image patches.

Per image: conv patchify (row-major patches), prepend the cls token, add the position embedding (bicubically
resampled with antialias when the patch grid is not the one it was trained for), insert the register tokens
between cls and patches (they get no position embedding), run the blocks, apply the final LayerNorm and keep the
patch tokens. All LayerNorms use eps 1e-6 and LayerScale is on.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rocket_openvla.teachers.vggt.layers import Block

DINO_NORM_EPS = 1e-6
DINO_LAYERSCALE_INIT = 1.0


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution: ``[N, 3, H, W]`` -> ``[N, (H/p)*(W/p), C]`` in row-major order."""

    def __init__(self, patch_size: int, embed_dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, images: Tensor) -> Tensor:
        return self.proj(images).flatten(2).transpose(1, 2)


class DinoV2PatchEmbedder(nn.Module):
    """Turns normalised images ``[N, 3, H, W]`` into final-norm patch tokens ``[N, (H/p)*(W/p), C]``.

    ``mask_token`` is unused at inference but is part of the checkpoint, so it is kept (frozen).
    """

    def __init__(
        self,
        img_size: int,
        patch_size: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        num_register_tokens: int,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.pos_grid = img_size // patch_size
        self.num_register_tokens = num_register_tokens
        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.empty(1, 1 + self.pos_grid**2, embed_dim))
        self.register_tokens = nn.Parameter(torch.empty(1, num_register_tokens, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim), requires_grad=False)
        self.patch_embed = PatchEmbed(patch_size, embed_dim)
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, init_values=DINO_LAYERSCALE_INIT, norm_eps=DINO_NORM_EPS)
            for _ in range(depth)
        )
        self.norm = nn.LayerNorm(embed_dim, eps=DINO_NORM_EPS)
        for token in (self.cls_token, self.pos_embed, self.register_tokens):
            nn.init.trunc_normal_(token, std=0.02)

    def position_embedding(self, grid_h: int, grid_w: int) -> Tensor:
        """Position embedding of [cls, patches] for a ``grid_h x grid_w`` patch grid: ``[1, 1 + grid_h*grid_w, C]``.

        The trained grid is used as is; any other grid resamples the patch part bicubically (fp32, antialias,
        output size = the grid, as DINOv2 with ``interpolate_offset=0``) and keeps the cls entry.
        """
        if (grid_h, grid_w) == (self.pos_grid, self.pos_grid):
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
        patch_pos = patch_pos.reshape(1, self.pos_grid, self.pos_grid, -1).permute(0, 3, 1, 2)
        patch_pos = F.interpolate(patch_pos, size=(grid_h, grid_w), mode="bicubic", antialias=True)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([cls_pos, patch_pos], dim=1)

    def forward(self, images: Tensor) -> Tensor:
        """``images [N, 3, H, W]`` (ImageNet-normalised, H and W multiples of the patch size) -> ``[N, h*w, C]``."""
        num_images, _, height, width = images.shape
        x = self.patch_embed(images)
        x = torch.cat([self.cls_token.expand(num_images, -1, -1), x], dim=1)
        x = x + self.position_embedding(height // self.patch_size, width // self.patch_size).to(x.dtype)
        x = torch.cat([x[:, :1], self.register_tokens.expand(num_images, -1, -1), x[:, 1:]], dim=1)
        for block in self.blocks:
            x = block(x)
        return self.norm(x[:, 1 + self.num_register_tokens :])
