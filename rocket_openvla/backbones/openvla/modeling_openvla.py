"""The Prismatic VLA behind OpenVLA-7B and OpenVLA-OFT, on current transformers and timm (no remote code).

    pixel_values [B, 6V, 224, 224] --(DINOv2 | SigLIP towers, second-to-last block)--> [B, 256V, 2176]
        --(projector fc1-GELU-fc2-GELU-fc3)--> patches [B, 256V, D]
    sequence = [BOS, patches (camera-major, row-major 16x16), extra tokens (proprio, diffusion step), text[1:]]
        --(Llama-2, bidirectional for OFT)--> hidden states [B, 1 + 256V + E + T - 1, D]

Module and parameter names equal the published openvla/openvla-7b checkpoint's (1002 keys), so the state dict
loads strictly and OFT's LoRA adapters (made on `OpenVLAForActionPrediction`) apply as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import timm
import torch
from timm.layers import LayerScale as TimmLayerScale
from torch import nn
from transformers import LlamaForCausalLM
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from rocket_openvla.backbones.openvla.action_tokenizer import ActionTokenizer
from rocket_openvla.backbones.openvla.checkpoint import check_state_dict, read_model_state_dict, write_model
from rocket_openvla.backbones.openvla.configuration_openvla import CONFIG_NAME, OpenVLAConfig
from rocket_openvla.backbones.openvla.prompting import IGNORE_INDEX
from rocket_openvla.errors import MissingInputError
from rocket_openvla.patches.bidirectional_attention import enable_bidirectional_attention

CHANNELS_PER_IMAGE = 6  # [DINOv2-normalised RGB | SigLIP-normalised RGB]


class LayerScale(nn.Module):
    """`x * scale_factor`: timm's LayerScale under the parameter name the OpenVLA checkpoints use.

    (The original renamed timm's `gamma` because transformers < 5 rewrote parameters named `gamma` on load.)
    """

    def __init__(self, scale_factor: torch.Tensor) -> None:
        super().__init__()
        self.scale_factor = nn.Parameter(scale_factor.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale_factor


def build_vision_tower(model_id: str, image_size: int, overrides: dict[str, Any] | None = None) -> nn.Module:
    """A randomly initialised timm ViT (never downloads), with LayerScale renamed to `scale_factor`.

    Args:
        model_id: timm architecture, e.g. "vit_large_patch14_reg4_dinov2.lvd142m".
        overrides: extra `timm.create_model` kwargs (tiny test towers: embed_dim, depth, num_heads).
    """
    tower = timm.create_model(model_id, pretrained=False, num_classes=0, img_size=image_size, **(overrides or {}))
    for block in tower.blocks:
        for name in ("ls1", "ls2"):
            module = getattr(block, name)
            if isinstance(module, TimmLayerScale):
                setattr(block, name, LayerScale(module.gamma))
    return tower


def penultimate_patch_features(tower: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """Patch tokens after the second-to-last block (no final norm, prefix tokens dropped): `[N, 3, H, W] -> [N, P, C]`.

    The last block, the final norm and SigLIP's attention-pool head never run.
    """
    (features,) = tower.forward_intermediates(
        images, indices=[len(tower.blocks) - 2], norm=False, stop_early=True, output_fmt="NLC", intermediates_only=True
    )
    return features


class PrismaticVisionBackbone(nn.Module):
    """Fused DINOv2 + SigLIP featurizer: `[B, 6V, H, W] -> [B, V * P, C_dino + C_siglip]`, camera-major."""

    def __init__(self, config: OpenVLAConfig) -> None:
        super().__init__()
        dino_id, siglip_id = config.timm_model_ids
        dino_overrides, siglip_overrides = config.vision_tower_overrides or ({}, {})
        self.image_size = config.image_size
        self.featurizer = build_vision_tower(dino_id, config.image_size, dino_overrides)
        self.fused_featurizer = build_vision_tower(siglip_id, config.image_size, siglip_overrides)
        self.embed_dim = self.featurizer.embed_dim + self.fused_featurizer.embed_dim

    @property
    def num_patches(self) -> int:
        """Patches per image (256 at 224 px)."""
        return self.featurizer.patch_embed.num_patches

    @property
    def patch_grid(self) -> tuple[int, int]:
        """Per-image patch grid (rows, cols), (16, 16) at 224 px."""
        return tuple(self.featurizer.patch_embed.grid_size)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = pixel_values.shape
        if channels % CHANNELS_PER_IMAGE:
            raise ValueError(
                f"pixel_values has {channels} channels; expected 6 per camera image ([DINOv2 RGB | SigLIP RGB], "
                "as the OpenVLA processor makes them) stacked on dim 1"
            )
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(
                f"pixel_values are {height}x{width}; the vision towers take {self.image_size}x{self.image_size}"
            )
        images = pixel_values.reshape(batch * channels // CHANNELS_PER_IMAGE, CHANNELS_PER_IMAGE, height, width)
        images = images.to(self.featurizer.patch_embed.proj.weight.dtype)  # float32 pixels into a bf16 model
        dino = penultimate_patch_features(self.featurizer, images[:, :3])
        siglip = penultimate_patch_features(self.fused_featurizer, images[:, 3:])
        features = torch.cat([dino, siglip], dim=-1)  # [B * V, P, C]
        return features.reshape(batch, -1, features.shape[-1])


class PrismaticProjector(nn.Module):
    """Fused-backbone MLP projector: fc1 (C -> 4C), GELU, fc2 (-> D), GELU, fc3 (D -> D)."""

    def __init__(self, vision_dim: int, llm_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(vision_dim, 4 * vision_dim)
        self.act_fn1 = nn.GELU()
        self.fc2 = nn.Linear(4 * vision_dim, llm_dim)
        self.act_fn2 = nn.GELU()
        self.fc3 = nn.Linear(llm_dim, llm_dim)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        return self.fc3(self.act_fn2(self.fc2(self.act_fn1(self.fc1(patches)))))


def action_token_mask(labels: torch.Tensor, action_token_begin: int) -> torch.Tensor:
    """`[B, T]` True where the label is an action token (id > `action_token_begin`); the stop token is not one.

    Equals OFT's `get_current_action_mask | get_next_actions_mask`.
    """
    return labels > action_token_begin


def action_token_positions(labels: torch.Tensor, action_token_begin: int, count: int) -> torch.Tensor:
    """`[B, count]` sequence positions of each sample's first `count` action tokens, in order, without a host sync.

    Every sample must hold at least `count` action tokens (the processor's contract: chunk * action_dim).
    """
    not_action = (~action_token_mask(labels, action_token_begin)).to(torch.int32)
    return torch.sort(not_action, dim=1, stable=True).indices[:, :count]


@dataclass
class OpenVLAOutput:
    """Outputs of one multimodal forward; T' = 1 + P + T - 1 with P = `projector_features.shape[1]`.

    last_hidden_state: `[B, T', D]` the final norm's output (= `hidden_states[-1]`).
    projector_features: `[B, P, D]` projected patches followed by the extra tokens (proprio, diffusion step).
    attention_mask: `[B, T']` of the multimodal sequence.
    hidden_states: n + 1 tensors `[B, T', D]` (Hugging Face convention) if requested.
    logits: `[B, T', V]` if requested; loss: next-token cross-entropy over the labelled text tokens.
    """

    last_hidden_state: torch.Tensor
    projector_features: torch.Tensor
    attention_mask: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None
    logits: torch.Tensor | None = None
    loss: torch.Tensor | None = None


class OpenVLAModel(nn.Module):
    """Prismatic VLA: `vision_backbone` (timm DINOv2 + SigLIP), `projector`, `language_model` (LlamaForCausalLM)."""

    def __init__(self, config: OpenVLAConfig) -> None:
        super().__init__()
        self.config = config
        self.vision_backbone = PrismaticVisionBackbone(config)
        self.projector = PrismaticProjector(self.vision_backbone.embed_dim, config.hidden_size)
        self.language_model = LlamaForCausalLM(config.llama_config())
        self.action_tokenizer = ActionTokenizer(config.tokenizer_vocab_size, config.n_action_bins)
        if config.bidirectional_attention:
            enable_bidirectional_attention(self.language_model)

    # --- structure -----------------------------------------------------------------------------------------------
    @property
    def decoder(self) -> nn.Module:
        """The Llama decoder stack (`.layers`, `.norm`)."""
        return self.language_model.model

    @property
    def action_token_begin(self) -> int:
        """Ids above this are the `n_action_bins` action tokens at the top of the tokenizer vocab (31743)."""
        return self.action_tokenizer.action_token_begin_idx

    def get_input_embeddings(self) -> nn.Embedding:
        return self.language_model.get_input_embeddings()

    def get_output_embeddings(self) -> nn.Linear:
        return self.language_model.get_output_embeddings()

    def action_hidden_states(self, output: OpenVLAOutput, labels: torch.Tensor, count: int) -> torch.Tensor:
        """`[B, count, D]` final-norm states one position before each action token (OFT's causal-LM alignment).

        Text token t (t >= 1) sits at sequence position t + P, so the state before it is at t + P - 1.
        """
        offset = output.projector_features.shape[1] - 1
        positions = action_token_positions(labels, self.action_token_begin, count) + offset
        hidden = output.last_hidden_state
        return hidden.gather(1, positions.unsqueeze(-1).expand(-1, -1, hidden.shape[-1]))

    # --- forward -------------------------------------------------------------------------------------------------
    def embed_text(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor | None = None,
        action_token_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Token embeddings `[B, T, D]`; with `labels`, action tokens get zeros (OFT) or `action_token_embeddings`.

        Args:
            action_token_embeddings: `[B, K, D]` replacements for each sample's K action tokens, in order
                (diffusion: the projected noisy actions).
        """
        embeds = self.get_input_embeddings()(input_ids)
        if labels is None:
            return embeds
        is_action = action_token_mask(labels, self.action_token_begin).unsqueeze(-1)
        if action_token_embeddings is None:
            return embeds * ~is_action
        positions = action_token_positions(labels, self.action_token_begin, action_token_embeddings.shape[1])
        placed = torch.zeros_like(embeds).scatter(
            1, positions.unsqueeze(-1).expand(-1, -1, embeds.shape[-1]), action_token_embeddings.to(embeds.dtype)
        )
        return torch.where(is_action, placed, embeds)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        extra_tokens: torch.Tensor | None = None,
        action_token_embeddings: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        compute_logits: bool = True,
    ) -> OpenVLAOutput:
        """One multimodal forward.

        Args:
            input_ids: `[B, T]` starting with BOS, right-padded.
            attention_mask: `[B, T]` True/1 at real tokens.
            pixel_values: `[B, 6V, H, W]`, V camera images.
            labels: `[B, T]` (IGNORE_INDEX where unsupervised); marks the action tokens and gives the CE loss.
            extra_tokens: `[B, E, D]` LLM tokens placed right after the patches (proprio, diffusion timestep).
            action_token_embeddings: see `embed_text`.
            compute_logits: False skips the LM head (the continuous action heads do not need it).
        """
        if input_ids.shape[0] != pixel_values.shape[0]:
            raise ValueError(
                f"input_ids has batch size {input_ids.shape[0]} but pixel_values {pixel_values.shape[0]}; "
                "every sample needs its images"
            )
        text = self.embed_text(input_ids, labels, action_token_embeddings)
        patches = self.projector(self.vision_backbone(pixel_values))
        prefix = patches if extra_tokens is None else torch.cat([patches, extra_tokens.to(patches.dtype)], dim=1)
        embeds = torch.cat([text[:, :1], prefix.to(text.dtype), text[:, 1:]], dim=1)
        prefix_mask = attention_mask.new_ones(prefix.shape[:2])
        mask = torch.cat([attention_mask[:, :1], prefix_mask, attention_mask[:, 1:]], dim=1)

        decoded = self.decoder(inputs_embeds=embeds, attention_mask=mask, output_hidden_states=output_hidden_states)
        logits = loss = None
        if compute_logits:
            logits = self.language_model.lm_head(decoded.last_hidden_state)
            if labels is not None:
                prefix_labels = labels.new_full(prefix.shape[:2], IGNORE_INDEX)
                mm_labels = torch.cat([labels[:, :1], prefix_labels, labels[:, 1:]], dim=1)
                loss = self.language_model.loss_function(
                    logits=logits, labels=mm_labels, vocab_size=self.config.text_config["vocab_size"]
                )
        return OpenVLAOutput(
            last_hidden_state=decoded.last_hidden_state,
            projector_features=prefix,
            attention_mask=mask,
            hidden_states=decoded.hidden_states,
            logits=logits,
            loss=loss,
        )

    # --- checkpoints ---------------------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        dtype: torch.dtype | None = None,
        device: str | torch.device = "cpu",
        **config_overrides: Any,
    ) -> OpenVLAModel:
        """Load the Hugging Face layout of `openvla/openvla-7b` (or a merged OFT checkpoint): `config.json` +
        `model.safetensors` or `model-*.safetensors` with `model.safetensors.index.json`. Strict: missing,
        unexpected or mis-shaped keys raise, naming them. The model is built on the meta device, so the weights are
        held in memory once.

        Args:
            dtype: cast floating-point weights to this dtype (default: as stored).
            config_overrides: replace `OpenVLAConfig` fields, e.g. `attn_implementation="eager"`.
        """
        path = Path(path)
        config_file = path / CONFIG_NAME
        if not config_file.is_file():
            raise MissingInputError(f"{path} has no {CONFIG_NAME}; pass an OpenVLA checkpoint directory")
        config = OpenVLAConfig.from_dict({**OpenVLAConfig.from_json_file(config_file).to_dict(), **config_overrides})
        state = read_model_state_dict(path, dtype=dtype, device=device)
        with torch.device("meta"):
            model = cls(config)
        check_state_dict(model.state_dict(), state, source=str(path))
        model.load_state_dict(state, strict=True, assign=True)
        model._init_non_persistent_buffers(torch.device(device))
        model.name_or_path = str(path)  # recorded by peft as the adapter's base model
        return model.eval()

    def _init_non_persistent_buffers(self, device: torch.device) -> None:
        """Buffers not stored in checkpoints (Llama's rotary frequencies) are rebuilt after a meta-device load."""
        with device:
            self.decoder.rotary_emb = LlamaRotaryEmbedding(self.language_model.config)
        still_meta = [name for name, t in [*self.named_parameters(), *self.named_buffers()] if t.is_meta]
        if still_meta:
            raise RuntimeError(f"tensors left on the meta device after loading: {still_meta}")

    def save_pretrained(self, path: str | Path, max_shard_bytes: int = 5 * 1024**3) -> None:
        """Write `config.json` and the safetensors weights in the published layout (sharded above 5 GB)."""
        write_model(Path(path), self.config.to_json_string(), self.state_dict(), max_shard_bytes)
