import numpy as np
import pytest

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME
from rocket_openvla.data.rlds import available_datasets, find_dataset_dir, open_builder, read_trajectories
from rocket_openvla.data.tf_runtime import tfds


def test_finds_datasets_by_name_and_version(rlds_root):
    expected = rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0"
    assert find_dataset_dir(rlds_root, SYNTHETIC_DATASET_NAME) == expected
    assert find_dataset_dir(rlds_root, f"{SYNTHETIC_DATASET_NAME}:1.0.0") == expected
    assert available_datasets(rlds_root) == ["synthetic_b_no_noops:1.0.0", f"{SYNTHETIC_DATASET_NAME}:1.0.0"]


def test_missing_dataset_lists_what_exists(rlds_root):
    with pytest.raises(FileNotFoundError) as error:
        open_builder(rlds_root, "libero_spatial_no_noops")
    message = str(error.value)
    assert "libero_spatial_no_noops/<version>/dataset_info.json" in message
    assert f"{SYNTHETIC_DATASET_NAME}:1.0.0" in message and "synthetic_b_no_noops:1.0.0" in message
    assert "data_root_dir" in message


def test_missing_root_and_nested_root_are_explained(rlds_root, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        find_dataset_dir(tmp_path / "nowhere", SYNTHETIC_DATASET_NAME)
    with pytest.raises(FileNotFoundError, match=f"points inside the dataset; use '{rlds_root}'"):
        find_dataset_dir(rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0", SYNTHETIC_DATASET_NAME)
    with pytest.raises(FileNotFoundError, match="9.9.9"):
        find_dataset_dir(rlds_root, f"{SYNTHETIC_DATASET_NAME}:9.9.9")


def test_libero_standardisation(rlds_root, raw_episodes):
    trajectories = list(read_trajectories(open_builder(rlds_root, SYNTHETIC_DATASET_NAME)).as_numpy_iterator())
    assert len(trajectories) == len(raw_episodes)
    for trajectory, raw in zip(trajectories, raw_episodes):
        np.testing.assert_array_equal(trajectory["action"][:, :6], raw.action[:, :6])
        # Gripper -1 (open) .. +1 (close) -> clip to [0, 1] and invert: 1 = open, 0 = closed.
        np.testing.assert_array_equal(trajectory["action"][:, 6], np.where(raw.action[:, 6] > 0, 0.0, 1.0))
        np.testing.assert_array_equal(trajectory["proprio"], raw.state)  # EEF 6 + gripper 2 = all 8 state dims
        assert trajectory["image_primary"][0][:2] == b"\xff\xd8"  # still JPEG-encoded
        assert {instruction.decode() for instruction in trajectory["instruction"]} == {raw.instruction}


def test_rank_shards_are_disjoint_and_cover_the_dataset(rlds_root, raw_episodes):
    builder = open_builder(rlds_root, SYNTHETIC_DATASET_NAME)
    world_size = 4
    shards = []
    for split in tfds.even_splits("train", n=world_size):
        proprio_first_steps = [t["proprio"][0].tobytes() for t in read_trajectories(builder, split).as_numpy_iterator()]
        shards.append(set(proprio_first_steps))
    assert all(shards)
    assert sum(len(shard) for shard in shards) == len(set().union(*shards)) == len(raw_episodes)


def test_non_libero_dataset_is_rejected(tmp_path):
    class NoWrist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        VERSION = tfds.core.Version("1.0.0")
        code_path = None

        def _info(self):
            step = {"observation": {"image": tfds.features.Image(shape=(8, 8, 3))}, "action": tfds.features.Tensor(
                shape=(7,), dtype=np.float32), "language_instruction": tfds.features.Text()}
            return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                {"steps": tfds.features.Dataset(step)}))

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples()}

        def _generate_examples(self):
            step = {"observation": {"image": np.zeros((8, 8, 3), np.uint8)}, "action": np.zeros(7, np.float32),
                    "language_instruction": "x"}
            yield "0", {"steps": [step]}

    NoWrist(data_dir=str(tmp_path)).download_and_prepare(
        download_dir=str(tmp_path / "dl"), download_config=tfds.download.DownloadConfig(try_download_gcs=False)
    )
    with pytest.raises(ValueError, match="missing steps/observation/wrist_image; missing steps/observation/state"):
        open_builder(tmp_path, "no_wrist")
