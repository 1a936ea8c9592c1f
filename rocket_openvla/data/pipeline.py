"""The training input pipeline: RLDS datasets -> an endless, sharded, shuffled, resumable stream of samples.

Per dataset, rank r of W reads the episodes `tfds.even_splits("train", W)[r]` (disjoint across ranks):
    episodes (file order reshuffled every pass) -> LIBERO standardisation -> drop episodes without an
    instruction or shorter than a chunk -> repeat -> OFT action chunks -> frames, interleaved across
    `TRAJECTORIES_INTERLEAVED` trajectories.
Then: weighted sampling across datasets (OFT's balanced weights) -> shuffle buffer of `shuffle_buffer_size`
frames (images still JPEG-encoded) -> decode + resize, OpenVLA augmentation when `image_aug` -> samples;
actions and proprio are normalised (BOUNDS_Q99) with each dataset's statistics.

Every random choice is seeded from `DataConfig.seed` and the rank, so the stream is reproducible; the iterator
position, shuffle buffer included, is saved and restored with `save_state` / `restore_state`.

Each sample (numpy), the same frames for the student and the teacher:
    images        uint8 [V, S, S, 3]   cameras in `CAMERA_VIEWS` order (primary, wrist), augmented when image_aug
    instruction   str                  the raw language instruction
    actions       float32 [chunk, 7]   normalised EEF deltas (6) + gripper (1 open / 0 closed, not normalised)
    proprio       float32 [8]          normalised EEF state (6) + gripper state (2)
    dataset_name  str
    episode_id    str                  the episode's tfds id; with `step`, the sample's stable key (teacher cache)
    step          int                  the frame's step in its episode
    crop_boxes    float32 [V, 4]       each camera's augmentation crop (y1, x1, y2, x2) in [0, 1]; whole frames
                                       (0, 0, 1, 1) without image_aug
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rocket_openvla.data.augment import augment_crop_boxes, augment_views, decode_and_resize
from rocket_openvla.data.chunking import chunk_actions
from rocket_openvla.data.config import CAMERA_VIEWS, DataConfig
from rocket_openvla.data.iterator_state import restore_iterator_state, save_iterator_state
from rocket_openvla.data.mixture import balance_weights, mixture_length
from rocket_openvla.data.rlds import read_trajectories
from rocket_openvla.data.sources import open_datasets
from rocket_openvla.data.statistics import statistics_to_json
from rocket_openvla.data.tf_runtime import tf, tfds
from rocket_openvla.errors import ConfigError
from rocket_openvla.normalization import (
    STATISTICS_NAME,
    DatasetStatistics,
    NormalizationType,
    parse_dataset_statistics,
    save_dataset_statistics,
)

NORMALIZATION = NormalizationType.BOUNDS_Q99
# Trajectories whose frames alternate before the shuffle buffer: more mixing, more memory (and saved state).
TRAJECTORIES_INTERLEAVED = 8
_SEED_STREAMS = {"files": 1, "mixture": 2, "shuffle": 3, "augment": 4}


class RLDSDataset(torch.utils.data.IterableDataset):
    """The endless sample stream (module docstring) of one rank; use it with `DataLoader(num_workers=0)`.

    Attributes:
        dataset_names: the datasets read, in mixture order.
        sample_weights: their sampling probabilities after OFT's balancing [num_datasets].
        dataset_versions: `{name: (version, train episodes)}`.
        dataset_statistics: `{dataset_name: entry}` in OFT's `dataset_statistics.json` schema.
        dataset_length: frames until each primary dataset was seen once, over all ranks (OFT's `len`).
        samples_yielded: samples this rank has yielded in the run (restored with the iterator state).
    """

    def __init__(self, config: DataConfig, *, rank: int = 0, world_size: int = 1) -> None:
        super().__init__()
        config.validate()
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} must lie in [0, world_size={world_size})")
        self.config, self.rank, self.world_size = config, rank, world_size
        datasets = open_datasets(config)
        builders = {name: dataset.builder for name, dataset in datasets.items()}
        self._statistics: dict[str, DatasetStatistics] = {name: d.statistics for name, d in datasets.items()}
        members = config.members()
        # {name: (version, train episodes)}: what a teacher cache records of each dataset
        self.dataset_versions = {name: (d.version, d.num_episodes) for name, d in datasets.items()}
        self.dataset_names = list(members)
        weights = [members[name] for name in self.dataset_names]
        sizes = [self._statistics[name].num_transitions for name in self.dataset_names]
        self.sample_weights = balance_weights(weights, sizes)
        self.dataset_length = mixture_length(weights, sizes)
        self.dataset_statistics = statistics_to_json(self._statistics)
        self._tf_dataset = self._build(builders)
        self._tf_iterator: Any = None
        self.samples_yielded = 0

    def _seed(self, stream: str, index: int = 0) -> int:
        """A 31-bit seed for one random stream of this rank, derived from `config.seed`."""
        sequence = np.random.SeedSequence([self.config.seed, self.rank, _SEED_STREAMS[stream], index])
        return int(sequence.generate_state(1)[0] & 0x7FFFFFFF)

    def _build(self, builders: dict[str, tfds.core.DatasetBuilder]) -> tf.data.Dataset:
        config = self.config
        streams = [
            _frame_stream(builder, name, self.rank, self.world_size, config, shuffle_seed=self._seed("files", index))
            for index, (name, builder) in enumerate(builders.items())
        ]
        frames = streams[0]
        if len(streams) > 1:
            frames = tf.data.Dataset.sample_from_datasets(
                streams, weights=self.sample_weights.tolist(), seed=self._seed("mixture")
            )
        frames = frames.shuffle(config.shuffle_buffer_size, seed=self._seed("shuffle"))
        to_sample = sample_transform(config.image_size, config.image_aug, self._seed("augment"))
        samples = frames.enumerate().map(to_sample, num_parallel_calls=config.num_parallel_calls, deterministic=True)
        options = tf.data.Options()
        options.deterministic = True
        return samples.prefetch(config.num_parallel_calls).with_options(options)

    def _iterator(self):
        if self._tf_iterator is None:
            self._tf_iterator = iter(self._tf_dataset)
        return self._tf_iterator

    def __iter__(self) -> Iterator[dict[str, Any]]:
        if torch.utils.data.get_worker_info() is not None:
            raise RuntimeError(
                "RLDSDataset runs in DataLoader worker processes, which would all yield the same stream; "
                "use DataLoader(num_workers=0) (tf.data already decodes in parallel: data.num_parallel_calls)"
            )
        iterator = self._iterator()
        while True:
            try:
                element = next(iterator)
            except StopIteration:
                raise RuntimeError(
                    f"{self.config.dataset} yields no samples on rank {self.rank}: every episode of its shard lacks "
                    f"an instruction or is shorter than data.num_actions_chunk={self.config.num_actions_chunk}"
                ) from None
            self.samples_yielded += 1
            yield to_numpy_sample(element, self._statistics[element["dataset_name"].numpy().decode()])

    def save_dataset_statistics(self, run_dir: str | Path) -> Path:
        """Write `<run_dir>/dataset_statistics.json` atomically; returns its path."""
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        statistics = parse_dataset_statistics(self.dataset_statistics)
        return save_dataset_statistics(statistics, run_dir / STATISTICS_NAME)

    def _fingerprint(self) -> dict[str, Any]:
        """What must be equal for a saved iterator position to mean the same thing here."""
        config = self.config
        return {
            "datasets": self.dataset_names,
            "sample_weights": [round(weight, 12) for weight in self.sample_weights.tolist()],
            "rank": self.rank,
            "world_size": self.world_size,
            "seed": config.seed,
            "shuffle_buffer_size": config.shuffle_buffer_size,
            "num_actions_chunk": config.num_actions_chunk,
            "image_size": config.image_size,
            "image_aug": config.image_aug,
        }

    def save_state(self, directory: str | Path) -> Path:
        """Save this rank's iterator position (shuffle buffer included) into `directory`."""
        return save_iterator_state(self._iterator(), directory, self._fingerprint(), self.samples_yielded)

    def restore_state(self, directory: str | Path) -> None:
        """Continue exactly where `save_state(directory)` was called (same config, rank and world size)."""
        self.samples_yielded = restore_iterator_state(self._iterator(), directory, self._fingerprint())


def build_dataset(config: DataConfig, *, rank: int = 0, world_size: int = 1) -> RLDSDataset:
    """The input pipeline of `rank` out of `world_size` (module docstring)."""
    return RLDSDataset(config, rank=rank, world_size=world_size)


def _frame_stream(
    builder: tfds.core.DatasetBuilder, name: str, rank: int, world_size: int, config: DataConfig, shuffle_seed: int
) -> tf.data.Dataset:
    """Endless chunked frames of this rank's shard of one dataset, images still encoded."""
    num_episodes = builder.info.splits["train"].num_examples
    if num_episodes < world_size:
        raise ConfigError(
            f"Dataset {name!r} has {num_episodes} training episodes, fewer than world_size={world_size}; every rank "
            "needs at least one. Fix: use fewer processes or more episodes."
        )
    shard = tfds.even_splits("train", n=world_size)[rank]
    chunk = config.num_actions_chunk
    trajectories = read_trajectories(
        builder, shard, shuffle_seed=shuffle_seed, num_parallel_reads=config.num_parallel_reads
    )
    usable = trajectories.filter(lambda trajectory: usable_trajectory(trajectory, chunk))
    return (
        usable.repeat()
        .map(lambda t: chunk_actions(t, chunk), num_parallel_calls=config.num_parallel_reads)
        .interleave(tf.data.Dataset.from_tensor_slices, cycle_length=TRAJECTORIES_INTERLEAVED, block_length=1)
        .map(lambda frame: {**frame, "dataset_name": tf.constant(name)})
    )


def usable_trajectory(trajectory: dict[str, tf.Tensor], chunk: int) -> tf.Tensor:
    """bool scalar: the trajectory has an instruction and at least `chunk` steps (OFT drops the others)."""
    return tf.reduce_any(trajectory["instruction"] != "") & (tf.shape(trajectory["action"])[0] >= chunk)


def sample_transform(image_size: int, image_aug: bool, augment_seed: int):
    """(position in the stream, frame) -> sample tensors; augmentation seeds are (augment_seed, position)."""

    def transform(position: tf.Tensor, frame: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        images = tf.stack([decode_and_resize(frame[f"image_{view}"], image_size) for view in CAMERA_VIEWS])
        crop_boxes = tf.tile(tf.constant([[0.0, 0.0, 1.0, 1.0]]), [len(CAMERA_VIEWS), 1])
        if image_aug:
            seed = tf.stack([tf.constant(augment_seed, tf.int64), position])
            images = augment_views(images, seed)
            crop_boxes = augment_crop_boxes(len(CAMERA_VIEWS), seed)
        return {
            "images": images,
            "instruction": frame["instruction"],
            "actions": frame["actions"],
            "proprio": frame["proprio"],
            "dataset_name": frame["dataset_name"],
            "episode_id": frame["episode_id"],
            "step": frame["step"],
            "crop_boxes": crop_boxes,
        }

    return transform


def to_numpy_sample(element: dict[str, tf.Tensor], statistics: DatasetStatistics) -> dict[str, Any]:
    """Sample tensors -> the numpy sample of the module docstring; actions and proprio normalised with `statistics`."""
    return {
        "images": element["images"].numpy(),
        "instruction": element["instruction"].numpy().decode(),
        "actions": statistics.action.normalize(element["actions"].numpy(), NORMALIZATION),
        "proprio": statistics.proprio.normalize(element["proprio"].numpy(), NORMALIZATION),
        "dataset_name": element["dataset_name"].numpy().decode(),
        "episode_id": element["episode_id"].numpy().decode(),
        "step": int(element["step"]),
        "crop_boxes": element["crop_boxes"].numpy(),
    }
