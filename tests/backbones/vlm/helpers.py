"""Raw samples in the data pipeline's format and tiny VLM adapters, for the tests of every transformers VLM family."""

import numpy as np

from rocket_openvla.backbones import BackboneConfig
from rocket_openvla.backbones.vlm.adapter import VLMAdapter
from rocket_openvla.backbones.vlm.configuration_vlm import VLMPolicySpec
from rocket_openvla.backbones.vlm.family import VLMBackboneConfig

# Policy options a family is tested with besides the defaults (e.g. cameras of different sizes).
POLICY_OPTIONS: dict[str, dict] = {"qwen2_5_vl": {"image_sizes": [224, 112]}}
# Every registered transformers VLM family, tested alike.
FAMILIES = {
    name: POLICY_OPTIONS.get(name, {})
    for name, config_class in sorted(BackboneConfig.get_known_choices().items())
    if issubclass(config_class, VLMBackboneConfig)
}
INSTRUCTION = "pick up the red block"


def raw_sample(seed: int = 0, num_cameras: int = 2, image_size: int = 128, with_actions: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    sample = {
        "images": rng.integers(0, 256, (num_cameras, image_size, image_size, 3), dtype=np.uint8),
        "instruction": INSTRUCTION,
        "proprio": rng.uniform(-1, 1, 8).astype(np.float32),
        "dataset_name": "synthetic_libero_no_noops",
    }
    if with_actions:
        sample["actions"] = rng.uniform(-1, 1, (8, 7)).astype(np.float32)
    return sample


def tiny_adapter(family: str, seed: int = 0, **config) -> VLMAdapter:
    policy = VLMPolicySpec(**FAMILIES[family])
    return BackboneConfig.get_choice_class(family)(policy=policy, seed=seed, **config).build()


def batch_of(adapter: VLMAdapter, count: int = 2, with_actions: bool = True) -> dict:
    processor = adapter.processor
    return processor.collator()([processor(raw_sample(seed, with_actions=with_actions)) for seed in range(count)])
