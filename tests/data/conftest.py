"""Shared fixtures: two small synthetic LIBERO-format RLDS datasets, generated once per test session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME, DataConfig
from rocket_openvla.data.synthetic import generate_synthetic_dataset
from rocket_openvla.data.tf_runtime import tfds

IMAGE_SIZE = 32
SECOND_DATASET = "synthetic_b_no_noops"


@dataclass
class RawEpisode:
    """One episode as written on disk (no standardisation): action [T, 7], state [T, 8]."""

    file_path: str
    episode_id: str  # the tfds id
    instruction: str
    action: np.ndarray
    state: np.ndarray


@pytest.fixture(scope="session")
def rlds_root(tmp_path_factory) -> Path:
    """`data_root_dir` holding SYNTHETIC_DATASET_NAME (6 episodes) and SECOND_DATASET (4 episodes)."""
    root = tmp_path_factory.mktemp("rlds")
    generate_synthetic_dataset(root, SYNTHETIC_DATASET_NAME, num_episodes=6, image_size=IMAGE_SIZE, seed=0)
    generate_synthetic_dataset(root, SECOND_DATASET, num_episodes=4, image_size=IMAGE_SIZE, seed=1)
    return root


def _read_raw_episodes(root: Path, name: str, split: str = "train") -> list[RawEpisode]:
    builder = tfds.builder_from_directory(str(root / name / "1.0.0"))
    episodes = builder.as_dataset(split=split, decoders={"steps": tfds.decode.SkipDecoding()},
                                  read_config=tfds.ReadConfig(add_tfds_id=True))
    return [
        RawEpisode(
            file_path=episode["episode_metadata"]["file_path"].decode(),
            episode_id=episode["tfds_id"].decode(),
            instruction=episode["steps"]["language_instruction"][0].decode(),
            action=episode["steps"]["action"],
            state=episode["steps"]["observation"]["state"],
        )
        for episode in episodes.as_numpy_iterator()
    ]


@pytest.fixture(scope="session")
def read_raw_episodes(rlds_root):
    """`read(name, split="train") -> list[RawEpisode]` straight from the tfrecords with tfds, in file order
    (independent of the package's reader)."""
    return lambda name, split="train": _read_raw_episodes(rlds_root, name, split)


@pytest.fixture(scope="session")
def raw_episodes(read_raw_episodes) -> list[RawEpisode]:
    return read_raw_episodes(SYNTHETIC_DATASET_NAME)


@pytest.fixture
def make_config(rlds_root):
    """`make_config(**overrides) -> DataConfig`: a fast pipeline over the first synthetic dataset."""
    return lambda **overrides: _small_config(rlds_root, **overrides)


def _small_config(root: Path, **overrides) -> DataConfig:
    values = dict(
        data_root_dir=root,
        dataset=SYNTHETIC_DATASET_NAME,
        image_size=IMAGE_SIZE,
        shuffle_buffer_size=64,
        num_parallel_calls=2,
        num_parallel_reads=2,
        seed=3,
    )
    values.update(overrides)
    return DataConfig(**values)
