"""Data: LIBERO-format RLDS datasets via tensorflow-datasets -> samples for finetuning.

    config      DataConfig, NAMED_MIXTURES (TF-free)        pipeline    RLDSDataset / build_dataset: the sample stream
    rlds        locate + read + standardise one dataset     chunking    OFT's action chunks
    statistics  cached statistics, resume check             augment     OpenVLA image augmentation / centre crop
    mixture     member checks, weight balancing             synthetic   generator of a LIBERO-format test dataset
    tf_runtime  the one place TensorFlow is imported

Only `config` is imported eagerly; the rest (TensorFlow) loads on first attribute access.
"""

from __future__ import annotations

from rocket_openvla.data.config import NAMED_MIXTURES, SYNTHETIC_DATASET_NAME, DataConfig, SyntheticDataConfig
from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "RLDSDataset": "rocket_openvla.data.pipeline",
    "build_dataset": "rocket_openvla.data.pipeline",
    "StatisticsMismatchError": "rocket_openvla.data.statistics",
    "check_statistics_match": "rocket_openvla.data.statistics",
    "generate_synthetic_dataset": "rocket_openvla.data.synthetic",
}

__all__ = ["NAMED_MIXTURES", "SYNTHETIC_DATASET_NAME", "DataConfig", "SyntheticDataConfig", *_LAZY]

__getattr__ = lazy_attributes(__name__, _LAZY)
