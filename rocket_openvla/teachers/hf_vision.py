"""Any transformers ViT-style vision backbone as a teacher (DINOv2, DINOv2 with registers, Depth-Anything's
backbone, SigLIP's vision tower, ...).

Layers index the model's ``hidden_states`` (0 = patch embeddings, k = output of layer k-1, as transformers).
Each camera is encoded on its own; leading special tokens (cls, registers) are dropped, i.e. everything before
the last ``(H/p) * (W/p)`` tokens.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from rocket_openvla.align import resolve_layers
from rocket_openvla.teachers.base import FrozenTeacher, TeacherPooling
from rocket_openvla.teachers.preprocessing import IMAGENET_MEAN, IMAGENET_STD, InputFormat, PixelNormalization


def _square(value: int | Sequence[int], field: str) -> int:
    """A size given as an int or an (h, w) pair with h == w."""
    if isinstance(value, int):
        return value
    if len(value) != 2 or value[0] != value[1]:
        raise ValueError(f"HFVisionTeacher needs a square {field}, the model config has {value}.")
    return int(value[0])


class HFVisionTeacher(FrozenTeacher):
    """Targets from ``model(pixel_values=..., output_hidden_states=True).hidden_states[layer]``.

    Args:
        model: a transformers vision model whose config has ``hidden_size``, ``num_hidden_layers``, ``patch_size``
            and ``image_size`` (for Depth-Anything pass ``DepthAnythingForDepthEstimation.backbone``).
        layers: ``hidden_states`` indices (negatives Python-style over ``num_hidden_layers + 1`` entries).
        grid, num_cameras, input_format, pixel_normalization, pooling: as for ``VGGTTeacher``.
        image_size: teacher input width in pixels (VGGT-style crop resize); default the config's ``image_size``.
        image_mean, image_std: the model's input normalisation (its image processor's; ImageNet by default).
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[int],
        grid: tuple[int, int] | Sequence[tuple[int, int]] = (16, 16),
        num_cameras: int = 1,
        input_format: InputFormat = "unit",
        pixel_normalization: PixelNormalization | None = None,
        pooling: TeacherPooling = TeacherPooling(),
        image_size: int | None = None,
        image_mean: Sequence[float] = IMAGENET_MEAN,
        image_std: Sequence[float] = IMAGENET_STD,
    ) -> None:
        config = model.config
        super().__init__(
            backbone=model,
            layers=resolve_layers(layers, config.num_hidden_layers + 1, "teacher layers"),
            feature_dim=config.hidden_size,
            grid=grid,
            num_cameras=num_cameras,
            input_format=input_format,
            pixel_normalization=pixel_normalization,
            pooling=pooling,
            image_size=_square(config.image_size if image_size is None else image_size, "image_size"),
            patch_size=_square(config.patch_size, "patch_size"),
        )
        self.register_buffer("image_mean", torch.tensor(image_mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(image_std).view(1, 1, 3, 1, 1), persistent=False)

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        layers: Sequence[int],
        auto_class: type | None = None,
        submodule: str | None = None,
        **teacher_kwargs,
    ) -> HFVisionTeacher:
        """Load model and normalisation from a Hub id or local directory (no remote code).

        ``auto_class`` defaults to ``AutoModel``; ``submodule`` picks a child, e.g.
        ``auto_class=AutoModelForDepthEstimation, submodule="backbone"`` for Depth-Anything.
        """
        from transformers import AutoImageProcessor, AutoModel

        model = (auto_class or AutoModel).from_pretrained(name_or_path)
        if submodule is not None:
            model = model.get_submodule(submodule)
        processor = AutoImageProcessor.from_pretrained(name_or_path)
        teacher_kwargs.setdefault("image_mean", processor.image_mean)
        teacher_kwargs.setdefault("image_std", processor.image_std)
        return cls(model, layers, **teacher_kwargs)

    def encode(self, frames: Tensor) -> Iterator[tuple[int, Tensor]]:
        batch, cameras, _, height, width = frames.shape
        num_patches = (height // self.patch_size) * (width // self.patch_size)
        pixel_values = ((frames - self.image_mean) / self.image_std).flatten(0, 1)
        hidden_states = self.backbone(pixel_values=pixel_values, output_hidden_states=True).hidden_states
        for layer in dict.fromkeys(self.layers):
            states = hidden_states[layer]
            if states.dim() != 3 or states.shape[1] < num_patches:
                raise ValueError(
                    f"HFVisionTeacher: hidden_states[{layer}] has shape {tuple(states.shape)}, expected "
                    f"[N, special + {num_patches}, C] for a {height}x{width} input with patch size "
                    f"{self.patch_size}; the model must keep one token per patch (plain ViT-style encoders)."
                )
            patches = states[:, states.shape[1] - num_patches :]
            yield layer, patches.reshape(batch, cameras, num_patches, states.shape[-1])
