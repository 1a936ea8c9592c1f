"""DINOv2 patch embedder: position-embedding resampling and patch-token output."""

from __future__ import annotations

import torch

from rocket_openvla.teachers.vggt.dinov2 import DinoV2PatchEmbedder

from ..helpers import randomize_


def _embedder() -> DinoV2PatchEmbedder:
    embedder = DinoV2PatchEmbedder(
        img_size=42, patch_size=14, embed_dim=16, depth=1, num_heads=2, mlp_ratio=4.0, num_register_tokens=4
    )
    return randomize_(embedder).eval()


def test_trained_grid_uses_the_parameter_and_other_grids_resample_patches_only():
    embedder = _embedder()
    assert embedder.position_embedding(3, 3) is embedder.pos_embed
    resampled = embedder.position_embedding(2, 5)
    assert resampled.shape == (1, 1 + 10, 16)
    assert torch.equal(resampled[:, 0], embedder.pos_embed[:, 0])
    constant = embedder.pos_embed.detach().clone()
    constant[:, 1:] = 0.7
    embedder.pos_embed.data.copy_(constant)
    torch.testing.assert_close(embedder.position_embedding(2, 5)[:, 1:], torch.full((1, 10, 16), 0.7))


def test_returns_one_token_per_patch_independent_of_other_images():
    embedder = _embedder()
    images = torch.randn(3, 3, 28, 42)
    with torch.no_grad():
        tokens = embedder(images)
        alone = embedder(images[1:2])
    assert tokens.shape == (3, 6, 16)
    torch.testing.assert_close(tokens[1:2], alone, atol=1e-6, rtol=0)
