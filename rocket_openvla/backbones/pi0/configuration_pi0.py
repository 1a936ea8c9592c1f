"""What is saved with a PI0 policy besides the model's own `config.json`: `PI0PolicySpec` (`policy_config.json`).
No model code is imported here."""

from __future__ import annotations

from dataclasses import dataclass

from rocket_openvla.errors import ConfigError
from rocket_openvla.normalization import NORMALIZATION_KINDS


@dataclass(frozen=True)
class PI0PolicySpec:
    """The policy's inputs and outputs around transformers' `PI0ForConditionalGeneration`. Defaults: LIBERO.
    Its fields are set under `backbone.policy` in a finetune config."""

    # Image slots of the model, in order (PI0: base, left wrist, right wrist); a sample's cameras fill the first
    # slots in the data's camera order (LIBERO: primary, wrist) and the others are absent (masked, no image tokens).
    camera_slots: int = 3
    # Dimensions of one action (LIBERO: 6 end-effector deltas + gripper), zero-padded to the model's max_action_dim.
    action_dim: int = 7
    # Dimensions of the robot state (LIBERO: 6 end-effector + 2 gripper), zero-padded to the model's max_state_dim.
    proprio_dim: int = 8
    # Actions per chunk (the flow-matching horizon); null: the checkpoint's chunk_size (lerobot/pi0_base: 50).
    chunk_size: int | None = None
    # Bounds that map actions and states to [-1, 1]: "bounds_q99" (1st/99th percentile; LIBERO) or "bounds" (min/max).
    normalization: str = "bounds_q99"

    def __post_init__(self) -> None:
        for name in ("camera_slots", "action_dim", "proprio_dim"):
            if getattr(self, name) < 1:
                raise ConfigError(f"backbone.policy.{name}={getattr(self, name)}; use 1 or more")
        if self.chunk_size is not None and self.chunk_size < 1:
            raise ConfigError(f"backbone.policy.chunk_size={self.chunk_size}; use 1 or more, or null (the model's)")
        if self.normalization not in NORMALIZATION_KINDS:
            raise ConfigError(
                f"backbone.policy.normalization={self.normalization!r}; choose one of {NORMALIZATION_KINDS}"
            )
