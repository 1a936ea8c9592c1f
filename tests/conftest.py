"""The session-wide generated dataset: a small synthetic LIBERO-format RLDS dataset that the training, deployment,
profiling and integration tests share (generated once per test session). tests/data/ has its own."""

from pathlib import Path

import pytest

from rocket_openvla.data.synthetic import generate_synthetic_dataset

DATASET = "synthetic_libero_no_noops"
NUM_EPISODES = 8
IMAGE_SIZE = 64


@pytest.fixture(scope="session")
def rlds_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rlds")
    generate_synthetic_dataset(root, name=DATASET, num_episodes=NUM_EPISODES, image_size=IMAGE_SIZE, seed=0)
    return root
