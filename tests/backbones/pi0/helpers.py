"""Raw samples in the data pipeline's format, and a tiny PI0 adapter, for the PI0 tests."""

import numpy as np

from rocket_openvla.backbones.pi0.adapter import PI0Adapter
from rocket_openvla.backbones.pi0.backbone_config import PI0BackboneConfig

INSTRUCTION = "pick up the red block"


def raw_sample(num_cameras: int, seed: int = 0, image_size: int = 224, chunk: int = 8) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "images": rng.integers(0, 256, (num_cameras, image_size, image_size, 3), dtype=np.uint8),
        "instruction": INSTRUCTION,
        "actions": rng.uniform(-1, 1, (chunk, 7)).astype(np.float32),
        "proprio": rng.uniform(-1, 1, 8).astype(np.float32),
        "dataset_name": "synthetic_libero_no_noops",
    }


def tiny_adapter(seed: int = 0, **config) -> PI0Adapter:
    return PI0BackboneConfig(seed=seed, **config).build()


def batch_of(adapter: PI0Adapter, *camera_counts: int) -> dict:
    """A collated batch whose samples have the given numbers of cameras (the remaining slots absent)."""
    processor = adapter.processor
    return processor.collator()([processor(raw_sample(count, seed=i)) for i, count in enumerate(camera_counts)])
