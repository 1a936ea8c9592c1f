"""`DataConfig`: where the RLDS data lives and how the input pipeline reads it; draccus-friendly, TF-free.

Defaults follow OpenVLA-OFT's LIBERO recipe except where OFT cannot work for us:
the shuffle buffer is bounded (OFT: 100k frames) and every rank reads its own shard (OFT: no sharding).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rocket_openvla.errors import ConfigError

SYNTHETIC_DATASET_NAME = "synthetic_libero_no_noops"
CAMERA_VIEWS = ("primary", "wrist")  # the cameras of every sample, in order (LIBERO: agent view, then wrist)
# Built-in named mixtures: name -> {dataset: sampling weight}. `DataConfig.mixtures` adds to (or overrides) them.
NAMED_MIXTURES: dict[str, dict[str, float]] = {
    "libero_4_task_suites_no_noops": {
        "libero_spatial_no_noops": 1.0,
        "libero_object_no_noops": 1.0,
        "libero_goal_no_noops": 1.0,
        "libero_10_no_noops": 1.0,
    },
}


@dataclass
class SyntheticDataConfig:
    # Generate `data.dataset` (a single name, e.g. "synthetic_libero_no_noops") under `data.data_root_dir` on
    # first use when it is missing (quickstart, tests). Never touches a dataset that exists.
    generate: bool = False
    # Episodes to generate (scripted pick-ups of 18-33 steps each).
    num_episodes: int = 16
    # Side of the square primary and wrist images written to disk (LIBERO: 256).
    image_size: int = 256
    # Seed of the generated scenes and episodes.
    seed: int = 0


@dataclass
class DataConfig:
    # Folder that contains `<dataset>/<version>/dataset_info.json` (e.g. the modified_libero_rlds clone).
    data_root_dir: Path = Path("datasets/rlds")
    # One dataset name (optionally `name:version`) or a named mixture (NAMED_MIXTURES or `mixtures`).
    dataset: str = "libero_spatial_no_noops"
    # Extra named mixtures, e.g. {"my_mix": {"libero_goal_no_noops": 1.0, "libero_10_no_noops": 0.5}}. As in OFT,
    # weights are multiplied by each dataset's number of steps (balanced), and datasets of weight 1.0 are "primary".
    mixtures: dict[str, dict[str, float]] = field(default_factory=dict)
    # OpenVLA's train-time image augmentation (random crop of 90 percent of the area + colour jitter), per camera.
    image_aug: bool = True
    # Frames held in the shuffle buffer per rank (OFT: 100k). RAM and the saved iterator state grow with it: the
    # buffer holds JPEG-encoded frames, ~40 kB each for LIBERO, so 10k frames ~ 0.4 GB per rank.
    shuffle_buffer_size: int = 10_000
    # Actions per sample: the current one and the next chunk - 1 (OFT's NUM_ACTIONS_CHUNK for LIBERO).
    num_actions_chunk: int = 8
    # Side of the square images the model sees.
    image_size: int = 224
    # Parallel calls for decoding / resizing / augmenting frames.
    num_parallel_calls: int = 8
    # Parallel reads of trajectories (files read at once, and chunking calls).
    num_parallel_reads: int = 4
    # Seed of file order, mixture sampling, shuffle and augmentation; ranks derive distinct streams from it.
    seed: int = 7
    synthetic: SyntheticDataConfig = field(default_factory=SyntheticDataConfig)

    def all_mixtures(self) -> dict[str, dict[str, float]]:
        return {**NAMED_MIXTURES, **self.mixtures}

    def members(self) -> dict[str, float]:
        """{dataset name: weight} that `dataset` stands for (itself with weight 1.0 when it is not a mixture)."""
        return dict(self.all_mixtures().get(self.dataset, {self.dataset: 1.0}))

    def validate(self) -> None:
        """Check the values that need no data; raise ValueError naming the field, the value and the fix."""
        positive = {
            "shuffle_buffer_size": self.shuffle_buffer_size,
            "num_actions_chunk": self.num_actions_chunk,
            "image_size": self.image_size,
            "num_parallel_calls": self.num_parallel_calls,
            "num_parallel_reads": self.num_parallel_reads,
            "synthetic.num_episodes": self.synthetic.num_episodes,
            "synthetic.image_size": self.synthetic.image_size,
        }
        for name, value in positive.items():
            if value < 1:
                raise ConfigError(f"data.{name}={value} must be >= 1")
        if not self.dataset:
            raise ConfigError(
                f"data.dataset is empty; name a dataset (e.g. libero_spatial_no_noops or {SYNTHETIC_DATASET_NAME}) "
                f"or a mixture ({sorted(self.all_mixtures())})"
            )
        for mixture, members in self.all_mixtures().items():
            if not members:
                raise ConfigError(f"data.mixtures[{mixture!r}] is empty; give at least one {{dataset: weight}}")
            bad = {name: weight for name, weight in members.items() if not weight > 0}
            if bad:
                raise ConfigError(f"data.mixtures[{mixture!r}] has non-positive weights {bad}; weights must be > 0")
        if self.synthetic.generate and self.dataset in self.all_mixtures():
            raise ConfigError(
                f"data.synthetic.generate=True needs data.dataset to be one dataset name, got the mixture "
                f"{self.dataset!r}; set data.dataset={SYNTHETIC_DATASET_NAME!r}"
            )
