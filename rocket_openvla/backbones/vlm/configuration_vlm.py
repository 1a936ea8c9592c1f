"""What is saved with a transformers-VLM policy besides the VLM's own files: `VLMPolicySpec` (`policy_config.json`).
No model code is imported here."""

from __future__ import annotations

from dataclasses import dataclass

from rocket_openvla.errors import ConfigError, check_choice
from rocket_openvla.normalization import NORMALIZATION_KINDS


@dataclass(frozen=True)
class VLMPolicySpec:
    """The OFT-style action head around a transformers VLM. Defaults: LIBERO. Set under `backbone.policy`."""

    # Camera images per sample, in the data's camera order (LIBERO: primary, then wrist); all present.
    num_images: int = 2
    # Feed the robot state as one extra token after the prompt (through OFT's proprio projector).
    use_proprio: bool = True
    # Actions predicted per step; the VLM reads chunk x action_dim learned action query tokens after the prompt.
    chunk: int = 8
    # Dimensions of one action (LIBERO: 6 end-effector deltas + gripper).
    action_dim: int = 7
    # Dimensions of the robot state (LIBERO: 6 end-effector + 2 gripper).
    proprio_dim: int = 8
    # Side each camera is resized to before the family's processor, one per camera, e.g. [224,112]; null: the
    # data's size, except 224 px for Qwen2.5-VL, whose token grid follows it (PaliGemma and SmolVLM resize every
    # camera to their own input size anyway).
    image_sizes: list[int] | None = None
    # Let every token attend to every token (OFT's parallel decoding of the action queries); false keeps the VLM's
    # own mask.
    bidirectional: bool = True
    # Bounds that map actions and states to [-1, 1]: "bounds_q99" (1st/99th percentile; LIBERO) or "bounds" (min/max).
    normalization: str = "bounds_q99"

    def __post_init__(self) -> None:
        for name in ("num_images", "chunk", "action_dim", "proprio_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"backbone.policy.{name}={getattr(self, name)}; use 1 or more")
        if self.image_sizes is not None and (
            len(self.image_sizes) != self.num_images or min(self.image_sizes) < 1
        ):
            raise ConfigError(
                f"backbone.policy.image_sizes={self.image_sizes}: give one positive side per camera "
                f"(num_images={self.num_images}), or null"
            )
        check_choice("backbone.policy.normalization", self.normalization, NORMALIZATION_KINDS)

    @property
    def num_action_tokens(self) -> int:
        return self.chunk * self.action_dim
