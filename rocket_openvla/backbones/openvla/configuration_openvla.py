"""What is saved with an OpenVLA policy besides weights: `OpenVLAConfig` (the architecture, `config.json`) and
`PolicySpec` (heads and inputs, `policy_config.json`). No model code is imported here.

The published `openvla/openvla-7b` `config.json` (and an OFT run directory's merged model) is read as is; the
remote-code keys (`auto_map`, `architectures`, ...) are ignored, never executed. Only the fused DINOv2 + SigLIP
224 px backbone with a Llama-family LLM is supported: that is OpenVLA-7B and every OFT checkpoint.

Our additions to the file: `vision_tower_overrides` (tower size overrides for tiny test models),
`attn_implementation` and `bidirectional_attention` (OFT's parallel decoding: every token attends to every
non-padding token).
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rocket_openvla.errors import ConfigError
from rocket_openvla.normalization import NORMALIZATION_KINDS

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
MODEL_TYPE = "openvla"

# vision_backbone_id -> (timm ids in channel order [DINOv2 | SigLIP], image size)
FUSED_VISION_BACKBONES: dict[str, tuple[tuple[str, str], int]] = {
    "dinosiglip-vit-so-224px": (("vit_large_patch14_reg4_dinov2.lvd142m", "vit_so400m_patch14_siglip_224"), 224),
}
# Llama-family llm_backbone_id -> Hugging Face id of the LLM it was initialised from
LLAMA_BACKBONES: dict[str, str] = {
    "llama2-7b-pure": "meta-llama/Llama-2-7b-hf",
    "llama2-13b-pure": "meta-llama/Llama-2-13b-hf",
    "llama2-7b-chat": "meta-llama/Llama-2-7b-chat-hf",
    "llama2-13b-chat": "meta-llama/Llama-2-13b-chat-hf",
    "vicuna-v15-7b": "lmsys/vicuna-7b-v1.5",
    "vicuna-v15-13b": "lmsys/vicuna-13b-v1.5",
}
FUSED_ARCH_SPECIFIER = "no-align+fused-gelu-mlp"

# The published `text_config` only lists overrides of transformers' 4.40 `LlamaConfig()` defaults (= Llama-2-7B);
# spell those defaults out so that a change of transformers' defaults can never change the model.
LLAMA2_7B_TEXT_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "vocab_size": 32064,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "hidden_act": "silu",
    "max_position_embeddings": 2048,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 32000,
}
# Keys of a published `text_config` that carry no architecture.
_TEXT_CONFIG_METADATA = {"torch_dtype", "dtype", "transformers_version", "_name_or_path", "architectures"}
# Keys of a published `config.json` that are derived from other fields or only serve remote code.
_DERIVED_KEYS = {
    "model_type", "auto_map", "architectures", "torch_dtype", "dtype", "transformers_version", "hf_llm_id",
    "timm_model_ids", "timm_override_act_layers", "image_sizes", "use_fused_vision_backbone",
    "output_projector_states",
}
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flash_attention_2", "flex_attention")
ACTION_HEAD_KINDS = ("l1", "diffusion", "discrete")


def resolve_text_config(overrides: dict[str, Any] | None) -> dict[str, Any]:
    """Llama-2-7B text config with `overrides` applied; metadata keys dropped, unknown keys kept with a warning."""
    overrides = {k: v for k, v in (overrides or {}).items() if k not in _TEXT_CONFIG_METADATA}
    if overrides.get("model_type", "llama") != "llama":
        raise ConfigError(
            f"text_config.model_type={overrides['model_type']!r}: only Llama language models are supported"
        )
    unknown = sorted(set(overrides) - set(LLAMA2_7B_TEXT_CONFIG))
    if unknown:
        logger.warning("text_config keys %s are passed to LlamaConfig unchecked", unknown)
    return {**LLAMA2_7B_TEXT_CONFIG, **overrides}


@dataclass(frozen=True)
class OpenVLAConfig:
    """Architecture and metadata of a Prismatic VLA (fused DINOv2+SigLIP towers, MLP projector, Llama LLM).

    Attributes:
        text_config: Llama config overrides (missing keys = Llama-2-7B); stored fully resolved.
        norm_stats: `dataset_statistics.json` content baked into the checkpoint (may be None).
        vision_tower_overrides: extra `timm.create_model` kwargs per tower `[DINOv2, SigLIP]` (tiny test models).
        bidirectional_attention: run the LLM non-causally (OFT parallel decoding); False = original OpenVLA.
    """

    text_config: dict[str, Any] = field(default_factory=dict)
    norm_stats: dict[str, Any] | None = None
    vision_backbone_id: str = "dinosiglip-vit-so-224px"
    llm_backbone_id: str = "llama2-7b-pure"
    arch_specifier: str = FUSED_ARCH_SPECIFIER
    image_resize_strategy: str = "resize-naive"
    llm_max_length: int = 2048
    pad_token_id: int = 32000
    pad_to_multiple_of: int = 64
    n_action_bins: int = 256
    vision_tower_overrides: tuple[dict[str, Any], dict[str, Any]] | None = None
    attn_implementation: str = "sdpa"
    bidirectional_attention: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "text_config", resolve_text_config(self.text_config))
        if self.vision_tower_overrides is not None:
            object.__setattr__(self, "vision_tower_overrides", tuple(dict(o) for o in self.vision_tower_overrides))
        self._validate()

    def _validate(self) -> None:
        if self.vision_backbone_id not in FUSED_VISION_BACKBONES:
            raise ConfigError(
                f"vision_backbone_id={self.vision_backbone_id!r} is not supported; the native OpenVLA model "
                f"implements the fused backbones {sorted(FUSED_VISION_BACKBONES)} (OpenVLA-7B, OpenVLA-OFT)"
            )
        if self.llm_backbone_id not in LLAMA_BACKBONES:
            raise ConfigError(
                f"llm_backbone_id={self.llm_backbone_id!r} is not supported; use one of {sorted(LLAMA_BACKBONES)}"
            )
        if self.arch_specifier != FUSED_ARCH_SPECIFIER:
            raise ConfigError(
                f"arch_specifier={self.arch_specifier!r}: the fused backbone needs {FUSED_ARCH_SPECIFIER!r}"
            )
        if self.vision_tower_overrides is not None and len(self.vision_tower_overrides) != 2:
            raise ConfigError(
                f"vision_tower_overrides has {len(self.vision_tower_overrides)} entries; give one dict per tower "
                "[DINOv2, SigLIP] or None"
            )
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ConfigError(
                f"attn_implementation={self.attn_implementation!r}; choose one of {ATTN_IMPLEMENTATIONS}"
            )
        if self.tokenizer_vocab_size <= self.n_action_bins:
            raise ConfigError(
                f"text_config.vocab_size={self.text_config['vocab_size']} minus pad_to_multiple_of="
                f"{self.pad_to_multiple_of} leaves no room for {self.n_action_bins} action bins"
            )

    # --- derived -------------------------------------------------------------------------------------------------
    @property
    def timm_model_ids(self) -> tuple[str, str]:
        return FUSED_VISION_BACKBONES[self.vision_backbone_id][0]

    @property
    def image_size(self) -> int:
        return FUSED_VISION_BACKBONES[self.vision_backbone_id][1]

    @property
    def hidden_size(self) -> int:
        return self.text_config["hidden_size"]

    @property
    def num_hidden_layers(self) -> int:
        return self.text_config["num_hidden_layers"]

    @property
    def tokenizer_vocab_size(self) -> int:
        """Vocabulary of the tokenizer (32000): the embedding is padded up to a multiple of 64 (32064)."""
        return self.text_config["vocab_size"] - self.pad_to_multiple_of

    def llama_config(self):
        """The `transformers.LlamaConfig` of the language model."""
        from transformers import LlamaConfig

        config = LlamaConfig(**self.text_config)
        config._attn_implementation = self.attn_implementation
        return config

    # --- serialisation -------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> OpenVLAConfig:
        """Build from a `config.json` dict (published OpenVLA layout or ours). Checks the derived fields agree."""
        if values.get("model_type", MODEL_TYPE) != MODEL_TYPE:
            raise ConfigError(f"config.json model_type={values['model_type']!r}; expected {MODEL_TYPE!r}")
        own = {f for f in cls.__dataclass_fields__}
        unknown = sorted(set(values) - own - _DERIVED_KEYS)
        if unknown:
            logger.warning("config.json keys %s are not used by the native OpenVLA model", unknown)
        config = cls(**{k: v for k, v in values.items() if k in own})
        config._check_derived(values)
        return config

    def _check_derived(self, values: dict[str, Any]) -> None:
        expected = {
            "timm_model_ids": list(self.timm_model_ids),
            "image_sizes": [self.image_size, self.image_size],
            "use_fused_vision_backbone": True,
            "timm_override_act_layers": [None, None],
        }
        for key, want in expected.items():
            if key in values and values[key] != want:
                raise ConfigError(
                    f"config.json {key}={values[key]!r} does not match vision_backbone_id="
                    f"{self.vision_backbone_id!r} (expects {want!r}); the checkpoint was made for another backbone"
                )

    def to_dict(self) -> dict[str, Any]:
        """`config.json` content: the published OpenVLA keys (no `auto_map`: no remote code) plus ours."""
        values = asdict(self)
        values["vision_tower_overrides"] = (
            None if self.vision_tower_overrides is None else [dict(o) for o in self.vision_tower_overrides]
        )
        return {
            "model_type": MODEL_TYPE,
            "architectures": ["OpenVLAForActionPrediction"],
            "hf_llm_id": LLAMA_BACKBONES[self.llm_backbone_id],
            "timm_model_ids": list(self.timm_model_ids),
            "timm_override_act_layers": [None, None],
            "image_sizes": [self.image_size, self.image_size],
            "use_fused_vision_backbone": True,
            "output_projector_states": False,
            **values,
        }

    @classmethod
    def from_json_file(cls, path: str | Path) -> OpenVLAConfig:
        with open(path) as f:
            return cls.from_dict(json.load(f))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"


@dataclass(frozen=True)
class PolicySpec:
    """Everything about the policy that is not in the VLA checkpoint (`policy_config.json`). Defaults: OFT's LIBERO
    recipe. Its fields are set under `backbone.policy` in a finetune config."""

    # Camera images per sample, in the data's camera order (LIBERO: primary, then wrist).
    num_images: int = 2
    # Feed the robot state to the LLM as one extra token after the image tokens (OFT's proprio projector).
    use_proprio: bool = True
    # Action head: "l1" (OFT's L1 regression), "diffusion" (OFT's DDIM head) or "discrete" (OpenVLA's action tokens).
    action_head: str = "l1"
    # Actions predicted per step (OFT's NUM_ACTIONS_CHUNK; LIBERO: 8).
    chunk: int = 8
    # Dimensions of one action (LIBERO: 6 end-effector deltas + gripper).
    action_dim: int = 7
    # Dimensions of the robot state (LIBERO: 6 end-effector + 2 gripper).
    proprio_dim: int = 8
    # Diffusion timesteps in training (action_head "diffusion" only).
    num_diffusion_steps_train: int = 50
    # Bounds that map actions and states to [-1, 1]: "bounds_q99" (1st/99th percentile; LIBERO) or "bounds" (min/max).
    normalization: str = "bounds_q99"

    def __post_init__(self) -> None:
        if self.action_head not in ACTION_HEAD_KINDS:
            raise ConfigError(f"backbone.policy.action_head={self.action_head!r}; choose one of {ACTION_HEAD_KINDS}")
        for name in ("num_images", "chunk", "action_dim", "proprio_dim", "num_diffusion_steps_train"):
            if getattr(self, name) < 1:
                raise ConfigError(f"backbone.policy.{name}={getattr(self, name)}; use 1 or more")
        if self.normalization not in NORMALIZATION_KINDS:
            raise ConfigError(
                f"backbone.policy.normalization={self.normalization!r}; choose one of {NORMALIZATION_KINDS}"
            )

    @property
    def num_action_tokens(self) -> int:
        return self.chunk * self.action_dim
