"""`OpenVLAAdapter`: the native OpenVLA / OpenVLA-OFT policy behind the `BackboneAdapter` interface, and its
registered draccus config `OpenVLABackboneConfig` (`--backbone.type openvla`).

Sequence layout (OpenVLA-OFT): position 0 BOS, image tokens at 1 .. 256 * num_images
(camera-major, row-major 16 x 16 each), then the proprio token (and the diffusion-timestep token), then the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from peft import LoraConfig, get_peft_model
from torch import nn
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from rocket_openvla.backbones.base import BackboneAdapter
from rocket_openvla.backbones.openvla.configuration_openvla import OpenVLAConfig
from rocket_openvla.backbones.openvla.modeling_openvla import OpenVLAModel
from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy, PolicySpec
from rocket_openvla.backbones.openvla.processing_openvla import OpenVLAProcessor
from rocket_openvla.backbones.openvla.tiny import SIZE_PRESETS
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer
from rocket_openvla.backbones.registry import BackboneConfig
from rocket_openvla.capture import CapturePoints
from rocket_openvla.normalization import DatasetStatistics

TEACHER_INPUT_FORMAT = "openvla"  # pixel_values [B, 6V, H, W], per camera [DINOv2-normalised RGB | SigLIP RGB]


def lora_target_modules(vla: OpenVLAModel) -> list[str]:
    """OFT's "all-linear" LoRA targets: every `nn.Linear` of the LLM, both towers and the projector, except the LM
    head (as peft does for transformers models) and the tower modules that never run (each tower's last block and
    SigLIP's attention-pool head, see `penultimate_patch_features`): LoRA there could only be dead weight, and
    leaving it out lets DDP run without `find_unused_parameters`."""
    never_run = ["language_model.lm_head"]
    for name in ("featurizer", "fused_featurizer"):
        tower = getattr(vla.vision_backbone, name)
        never_run += [f"vision_backbone.{name}.blocks.{len(tower.blocks) - 1}.", f"vision_backbone.{name}.attn_pool."]
    return [
        name
        for name, module in vla.named_modules()
        if isinstance(module, nn.Linear) and not any(name == n or name.startswith(n) for n in never_run)
    ]


class OpenVLAAdapter(BackboneAdapter):
    """Adapter of an `OpenVLAPolicy`; see `BackboneAdapter` for the contract."""

    teacher_input_format = TEACHER_INPUT_FORMAT

    def __init__(self, policy: OpenVLAPolicy, processor: OpenVLAProcessor) -> None:
        self._policy = policy
        self._processor = processor

    @property
    def policy(self) -> OpenVLAPolicy:
        return self._policy

    @property
    def processor(self) -> OpenVLAProcessor:
        return self._processor

    @property
    def vla(self) -> OpenVLAModel:
        """The OpenVLAModel (under the LoRA wrapper, if any)."""
        return self._policy.base_vla

    @property
    def hidden_size(self) -> int:
        return self.vla.config.hidden_size

    @property
    def num_hidden_layers(self) -> int:
        return self.vla.config.num_hidden_layers

    @property
    def num_images(self) -> int:
        return self._policy.spec.num_images

    @property
    def camera_grid(self) -> tuple[int, int]:
        return self.vla.vision_backbone.patch_grid

    @property
    def has_lora(self) -> bool:
        """True once the VLA is peft-wrapped (by `apply_lora` or by loading a run directory's adapter)."""
        return self._policy.has_lora

    def image_token_span(self) -> tuple[int, int]:
        return 1, self.vla.vision_backbone.num_patches * self.num_images

    def capture_points(self) -> CapturePoints:
        return CapturePoints.from_decoder(self.vla.decoder)

    def apply_lora(
        self,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
        init: str | bool = "gaussian",
    ) -> None:
        if self.has_lora:
            raise RuntimeError(
                "the VLA already carries a LoRA adapter (loaded from a run directory's lora_adapter/, or applied "
                "before); check adapter.has_lora before apply_lora"
            )
        targets = lora_target_modules(self.vla) if target_modules == "all-linear" else target_modules
        config = LoraConfig(
            r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, init_lora_weights=init
        )
        self._policy.vla = get_peft_model(self._policy.vla, config)

    def gradient_checkpointing_enable(self) -> None:
        """Recompute decoder blocks and ViT blocks in backward (non-reentrant; capture hooks stay outside)."""
        self.vla.language_model.activation_checkpointing_enable({"use_reentrant": False})
        self.vla.vision_backbone.featurizer.set_grad_checkpointing(True)
        self.vla.vision_backbone.fused_featurizer.set_grad_checkpointing(True)

    def set_dataset_statistics(self, statistics: Mapping[str, Mapping[str, Any] | DatasetStatistics]) -> None:
        """JSON-schema entries (or parsed `DatasetStatistics`) become `policy.statistics` (saved with the policy)."""
        self._policy.statistics = {
            name: entry if isinstance(entry, DatasetStatistics) else DatasetStatistics.from_dict(entry, where=name)
            for name, entry in statistics.items()
        }

    def merge_lora(self) -> None:
        if not self.has_lora:
            raise RuntimeError("the VLA carries no LoRA adapter to merge")
        self._policy.vla = self._policy.vla.merge_and_unload()

    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """The policy's run directory (see `policy.py`) plus the tokenizer files."""
        self._policy.save_pretrained(path, tag)
        self._processor.tokenizer.save_pretrained(str(path))


@BackboneConfig.register_subclass("openvla")
@dataclass
class OpenVLABackboneConfig(BackboneConfig):
    """Native OpenVLA / OpenVLA-OFT (`--backbone.type openvla`). Defaults: OFT's LIBERO recipe on the tiny model."""

    # Checkpoint directory: openvla/openvla-7b's layout, an OFT run dir or one of ours. None: random `size` model.
    pretrained: str | None = None
    # Base VLA for a run directory that holds only `lora_adapter/` (default: the adapter's recorded base).
    base: str | None = None
    # Architecture of the random model when `pretrained` is None: "tiny" (tests, quickstart) or "7b".
    size: str = "tiny"
    num_images: int = 2
    use_proprio: bool = True
    # "l1" (OFT), "diffusion" or "discrete" (OpenVLA's action tokens).
    action_head: str = "l1"
    chunk: int = 8
    action_dim: int = 7
    proprio_dim: int = 8
    num_diffusion_steps_train: int = 50
    normalization: str = "bounds_q99"
    attn_implementation: str = "sdpa"
    # OFT's parallel decoding; False keeps the LLM causal (original OpenVLA).
    bidirectional_attention: bool = True
    # Weight dtype, e.g. "bfloat16" for the 7B on GPU; None keeps the checkpoint's (random models: float32).
    dtype: str | None = None
    # Seeds the random initialisation of new weights (heads, or the whole random model).
    seed: int = 0

    def policy_spec(self) -> PolicySpec:
        return PolicySpec(
            num_images=self.num_images,
            use_proprio=self.use_proprio,
            action_head=self.action_head,
            chunk=self.chunk,
            action_dim=self.action_dim,
            proprio_dim=self.proprio_dim,
            num_diffusion_steps_train=self.num_diffusion_steps_train,
            normalization=self.normalization,
        )

    def torch_dtype(self) -> torch.dtype | None:
        if self.dtype is None:
            return None
        dtype = getattr(torch, self.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"backbone.dtype={self.dtype!r} is not a torch dtype; use e.g. 'bfloat16' or 'float32'")
        return dtype

    def build(self) -> OpenVLAAdapter:
        spec, dtype = self.policy_spec(), self.torch_dtype()
        overrides = {
            "attn_implementation": self.attn_implementation,
            "bidirectional_attention": self.bidirectional_attention,
        }
        torch.manual_seed(self.seed)
        if self.pretrained is None:
            policy = OpenVLAPolicy(OpenVLAModel(self._random_config(**overrides)), spec)
            if dtype is not None:
                policy.to(dtype)
            tokenizer = build_tiny_tokenizer()
        else:
            policy = OpenVLAPolicy.from_pretrained(
                self.pretrained, base=self.base, spec=spec, trainable_lora=True, dtype=dtype, **overrides
            )
            tokenizer = self._load_tokenizer()
        processor = OpenVLAProcessor(tokenizer, image_size=policy.base_vla.config.image_size)
        policy.action_prefix_id = processor.action_prefix_id
        return OpenVLAAdapter(policy, processor)

    def _random_config(self, **overrides: object) -> OpenVLAConfig:
        if self.size not in SIZE_PRESETS:
            raise ValueError(f"backbone.size={self.size!r}; choose one of {sorted(SIZE_PRESETS)}")
        return SIZE_PRESETS[self.size](**overrides)

    def _load_tokenizer(self) -> PreTrainedTokenizerBase:
        for directory in (self.pretrained, self.base):
            if directory is not None and any(Path(directory).glob("tokenizer*")):
                return AutoTokenizer.from_pretrained(directory)
        raise FileNotFoundError(
            f"no tokenizer files (tokenizer.json / tokenizer.model) in backbone.pretrained={self.pretrained!r} or "
            f"backbone.base={self.base!r}; copy them from openvla/openvla-7b into the checkpoint directory"
        )

