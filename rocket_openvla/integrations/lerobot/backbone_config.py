"""`LeRobotBackboneConfig`: the registered `--backbone.type lerobot` config (lerobot's pi0, pi0.5 and SmolVLA).

Parsing and validating it imports neither lerobot nor any model code, so the finetune script's config parser knows
it in every environment; `build()` needs lerobot 0.6.1 (Python >= 3.12, its own venv: `scripts/test_lerobot.sh`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from rocket_openvla.backbones.registry import WEIGHT_DTYPES, BackboneConfig
from rocket_openvla.errors import ConfigError, check_choice
from rocket_openvla.integrations.lerobot.configuration_lerobot import POLICY_TYPES, SIZES

if TYPE_CHECKING:
    from rocket_openvla.integrations.lerobot.adapter import LeRobotAdapter

IMAGE_KEY_PREFIX = "observation.images."  # lerobot's camera feature keys
# lerobot's names of LIBERO's cameras (its LIBERO datasets), in our data's camera order (primary, wrist).
LIBERO_CAMERAS = ("observation.images.image", "observation.images.wrist_image")
PI_DTYPES = ("float32", "bfloat16")  # lerobot's pi0 / pi05 `dtype` choices


@BackboneConfig.register_subclass("lerobot")
@dataclass
class LeRobotBackboneConfig(BackboneConfig):
    """A lerobot policy (`PI0Policy`, `PI05Policy`, `SmolVLAPolicy`). Defaults: a tiny random pi0 on LIBERO."""

    # lerobot policy type: "pi0", "pi05" or "smolvla".
    policy_type: str = "pi0"
    # Local lerobot policy directory (config.json + model.safetensors, e.g. lerobot/pi05_base downloaded) or a policy
    # directory of one of our runs; null: a random model of `size`.
    pretrained: str | None = None
    # Base policy of a `pretrained` run directory that holds only `lora_adapter/`; null: the adapter's recorded base.
    base: str | None = None
    # Tokenizer directory (pi0/pi05: google/paligemma-3b-pt-224's; smolvla: the SmolVLM2 directory); null: the
    # files of `vlm_model_name`, `pretrained` or `base`; random tiny models use a character tokenizer.
    tokenizer: str | None = None
    # smolvla only: local directory of the VLM lerobot builds SmolVLA around (its config.json and processor, e.g.
    # HuggingFaceTB/SmolVLM2-500M-Video-Instruct downloaded); null: the policy config's `vlm_model_name`.
    vlm_model_name: str | None = None
    # Architecture of the random model when `pretrained` is null: "tiny" (tests, quickstart) or "full" (lerobot's).
    size: str = "tiny"
    # lerobot image keys our data's cameras fill, in the data's camera order (LIBERO: primary, wrist). They become
    # the policy's image features (as lerobot's make_policy takes them from the dataset).
    cameras: list[str] = field(default_factory=lambda: list(LIBERO_CAMERAS))
    # Extra camera slots that no data fills (lerobot's `empty_cameras`): black, masked, never aligned.
    empty_cameras: int = 0
    # Dimensions of the robot state (LIBERO: 8), zero-padded by lerobot to its max_state_dim.
    state_dim: int = 8
    # Dimensions of one action (LIBERO: 7), zero-padded by lerobot to its max_action_dim.
    action_dim: int = 7
    # Actions per chunk (lerobot's chunk_size and n_action_steps); null: the policy config's (lerobot: 50).
    chunk_size: int | None = None
    # Square image side of a random model (pi0/pi05: image_resolution; smolvla: resize_imgs_with_padding); null:
    # 56 (pi0/pi05) / 128 (smolvla) for "tiny", lerobot's defaults for "full". Pretrained policies keep theirs.
    image_size: int | None = None
    # lerobot's gradient checkpointing (pi0/pi05; lerobot's SmolVLA has none).
    gradient_checkpointing: bool = False
    # lerobot's `train_expert_only`; null: the policy config's. With LoRA the VLM's language model gets adapters
    # either way (ROCKET aligns it).
    train_expert_only: bool | None = None
    # lerobot's `freeze_vision_encoder`; null: the policy config's. A frozen vision encoder gets no LoRA adapters.
    freeze_vision_encoder: bool | None = None
    # Weight dtype: "float32", "bfloat16" (pi0/pi05: lerobot's `dtype`), or null (the policy config's).
    dtype: str | None = None
    # Seed of the random initialisation.
    seed: int = 0

    side_file_fields: ClassVar[tuple[str, ...]] = ("tokenizer",)

    def validate(self) -> None:
        check_choice("backbone.policy_type", self.policy_type, POLICY_TYPES)
        check_choice("backbone.size", self.size, SIZES)
        dtypes = PI_DTYPES if self.policy_type != "smolvla" else WEIGHT_DTYPES
        check_choice("backbone.dtype", self.dtype, (*dtypes, None), f" for {self.policy_type} (null: the config's)")
        if not self.cameras or len(set(self.cameras)) != len(self.cameras):
            raise ConfigError(f"backbone.cameras={self.cameras}; name each camera of the data once, in order")
        wrong = [key for key in self.cameras if not key.startswith(IMAGE_KEY_PREFIX)]
        if wrong:
            raise ConfigError(f"backbone.cameras has {wrong}; lerobot image keys start with {IMAGE_KEY_PREFIX!r}")
        for name in ("state_dim", "action_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"backbone.{name}={getattr(self, name)}; use 1 or more")
        for name in ("chunk_size", "image_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"backbone.{name}={value}; use 1 or more, or null")
        if self.empty_cameras < 0:
            raise ConfigError(f"backbone.empty_cameras={self.empty_cameras}; use 0 or more")
        if self.gradient_checkpointing and self.policy_type == "smolvla":
            raise ConfigError(
                "backbone.gradient_checkpointing=true with backbone.policy_type='smolvla'; lerobot's SmolVLA has no "
                "gradient checkpointing: set it to false"
            )

    def build(self) -> LeRobotAdapter:
        self.validate()
        from rocket_openvla.integrations.lerobot.adapter import build_lerobot_adapter

        return build_lerobot_adapter(self)
