import json

import pytest

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME
from rocket_openvla.data.synthetic import generate_synthetic_dataset
from rocket_openvla.data.tf_runtime import tfds

LIBERO_STEP_FEATURES = {
    "action": ((7,), "float32"),
    "discount": ((), "float32"),
    "reward": ((), "float32"),
    "is_first": ((), "bool"),
    "is_last": ((), "bool"),
    "is_terminal": ((), "bool"),
    "language_instruction": ((), "string"),
    "observation/state": ((8,), "float32"),
    "observation/joint_state": ((7,), "float32"),
}


def test_written_dataset_has_libero_features(rlds_root):
    builder = tfds.builder_from_directory(str(rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0"))
    steps = builder.info.features["steps"].feature
    for key, (shape, dtype) in LIBERO_STEP_FEATURES.items():
        feature = steps
        for part in key.split("/"):
            feature = feature[part]
        assert (tuple(feature.shape), feature.tf_dtype.name) == (shape, dtype), key
    for camera in ("image", "wrist_image"):
        image = steps["observation"][camera]
        assert tuple(image.shape) == (32, 32, 3) and image.encoding_format == "jpeg"
    assert "file_path" in builder.info.features["episode_metadata"]
    assert list(builder.info.splits) == ["train"] and builder.info.splits["train"].num_examples == 6


def test_episodes_read_back_from_disk(raw_episodes):
    assert len(raw_episodes) == 6
    assert len({episode.file_path for episode in raw_episodes}) == 6
    for episode in raw_episodes:
        assert episode.instruction.startswith("pick up the ")
        assert episode.action.shape == (len(episode.state), 7) and episode.state.shape[1] == 8


def test_generation_is_idempotent_and_checks_its_options(rlds_root):
    dataset_dir = rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0"
    before = {path.name: path.stat().st_mtime_ns for path in dataset_dir.iterdir()}
    again = generate_synthetic_dataset(rlds_root, SYNTHETIC_DATASET_NAME, num_episodes=6, image_size=32, seed=0)
    assert again == dataset_dir
    assert {path.name: path.stat().st_mtime_ns for path in dataset_dir.iterdir()} == before
    assert json.loads((dataset_dir / "metadata.json").read_text())["generator"]["seed"] == 0
    with pytest.raises(ValueError, match="num_episodes': 7"):
        generate_synthetic_dataset(rlds_root, SYNTHETIC_DATASET_NAME, num_episodes=7, image_size=32, seed=0)


def test_same_seed_writes_the_same_bytes(tmp_path, rlds_root):
    copy = generate_synthetic_dataset(tmp_path, SYNTHETIC_DATASET_NAME, num_episodes=6, image_size=32, seed=0)
    original = rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0"
    records = sorted(path.name for path in original.glob("*.tfrecord*"))
    assert records and records == sorted(path.name for path in copy.glob("*.tfrecord*"))
    for name in records:
        assert (copy / name).read_bytes() == (original / name).read_bytes()
