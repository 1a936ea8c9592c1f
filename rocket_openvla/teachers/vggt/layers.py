"""Pre-norm ViT block shared by the DINOv2 patch embedder and the aggregator's frame/global blocks.

Module names (``norm1``, ``attn.qkv``, ``attn.q_norm``, ``ls1.gamma``, ``mlp.fc1`` ...) are the checkpoint's key
names. The two users differ only in LayerNorm eps (DINOv2 1e-6, aggregator 1e-5), q/k normalisation and RoPE.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rocket_openvla.teachers.vggt.rope import RotaryEmbedding2D

RopeTables = tuple[Tensor, Tensor]
"""cos and sin ``[N, head_dim]`` for the N tokens of an attention call (see ``RotaryEmbedding2D.tables``)."""


class LayerScale(nn.Module):
    """Per-channel residual-branch scale ``gamma [dim]``."""

    def __init__(self, dim: int, init_value: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    """fc1 -> exact GELU -> fc2."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    """Multi-head self-attention with a fused q|k|v projection, optional per-head q/k LayerNorm and 2-D RoPE."""

    def __init__(
        self, dim: int, num_heads: int, qk_norm: bool, norm_eps: float, rope: RotaryEmbedding2D | None
    ) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(self.head_dim, eps=norm_eps) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rope = rope

    def forward(self, x: Tensor, rope_tables: RopeTables | None = None) -> Tensor:
        """``x [B, N, C]`` -> ``[B, N, C]``; ``rope_tables`` ``[N, head_dim]`` each, required iff RoPE is used."""
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # [B, heads, N, head_dim]
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rope is not None:
            if rope_tables is None:
                raise ValueError("Attention was built with RoPE but called without rope_tables.")
            q, k = self.rope(q, *rope_tables), self.rope(k, *rope_tables)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    """``x + ls1(attn(norm1(x)))`` then ``x + ls2(mlp(norm2(x)))``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float,
        init_values: float,
        norm_eps: float,
        qk_norm: bool = False,
        rope: RotaryEmbedding2D | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps)
        self.attn = Attention(dim, num_heads, qk_norm=qk_norm, norm_eps=norm_eps, rope=rope)
        self.ls1 = LayerScale(dim, init_values)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls2 = LayerScale(dim, init_values)

    def forward(self, x: Tensor, rope_tables: RopeTables | None = None) -> Tensor:
        """``x [B, N, C]`` -> ``[B, N, C]``."""
        x = x + self.ls1(self.attn(self.norm1(x), rope_tables))
        return x + self.ls2(self.mlp(self.norm2(x)))
