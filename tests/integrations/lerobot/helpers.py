"""Tiny lerobot policies and LIBERO-like samples for the lerobot tests.

The tests that build policies need lerobot 0.6.1 (Python >= 3.12, its own venv); each of their modules starts with
`pytest.importorskip("lerobot", reason=SKIP_REASON)`, so the main suite skips them with that reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SKIP_REASON = "needs lerobot 0.6.1 (Python >= 3.12, its own venv): scripts/test_lerobot.sh builds it and runs these"
POLICY_TYPES = ("pi0", "pi05", "smolvla")
CHUNK = 4
INSTRUCTIONS = ("put the bowl on the plate", "open the top drawer and put the bowl inside")


def tiny_options(policy_type: str, **overrides: Any):
    """A tiny random policy of `policy_type`: LIBERO's two cameras plus one empty camera slot, chunks of 4."""
    from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig

    values = dict(policy_type=policy_type, chunk_size=CHUNK, empty_cameras=1, seed=1)
    if policy_type == "smolvla":
        values["train_expert_only"] = False  # lerobot's default freezes the VLM (LoRA adapts it anyway)
    return LeRobotBackboneConfig(**{**values, **overrides})


def samples(count: int, seed: int = 0, image_size: int = 64, cameras: int = 2) -> list[dict[str, Any]]:
    """Raw samples as our data pipeline yields them (normalised state and actions)."""
    rng = np.random.default_rng(seed)
    return [{
        "images": rng.integers(0, 256, (cameras, image_size, image_size, 3), dtype=np.uint8),
        "instruction": INSTRUCTIONS[index % len(INSTRUCTIONS)],
        "proprio": rng.uniform(-1, 1, 8).astype(np.float32),
        "actions": rng.uniform(-1, 1, (CHUNK, 7)).astype(np.float32),
        "dataset_name": "synthetic_libero_no_noops",
    } for index in range(count)]


def batch_of(adapter: Any, count: int = 2, seed: int = 0) -> dict[str, Any]:
    """The lerobot batch of `count` samples through the adapter's processor and collator."""
    processor = adapter.processor
    return processor.collator()([processor(sample) for sample in samples(count, seed)])
