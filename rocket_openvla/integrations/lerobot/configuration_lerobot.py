"""What a lerobot policy directory of ours records besides lerobot's own `config.json`: `LeRobotPolicySpec`
(`policy_config.json`). No model code (and no lerobot) is imported here."""

from __future__ import annotations

from dataclasses import dataclass

from rocket_openvla.errors import check_choice

POLICY_TYPES = ("pi0", "pi05", "smolvla")  # lerobot's `--policy.type` names
# "tiny": lerobot's architecture at test size (see `tiny.py`); "full": lerobot's own sizes.
SIZES = ("tiny", "full")


@dataclass(frozen=True)
class LeRobotPolicySpec:
    """Which lerobot policy a directory holds and at which size it must be rebuilt before its weights load."""

    policy_type: str = "pi0"
    size: str = "full"

    def __post_init__(self) -> None:
        check_choice("policy_config.json policy_type", self.policy_type, POLICY_TYPES)
        check_choice("policy_config.json size", self.size, SIZES)
