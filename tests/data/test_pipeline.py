import json
from itertools import islice

import numpy as np
import pytest
from torch.utils.data import DataLoader

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME, DataConfig, SyntheticDataConfig
from rocket_openvla.data.pipeline import RLDSDataset, build_dataset
from rocket_openvla.data.tf_runtime import tfds
from rocket_openvla.normalization import load_dataset_statistics

CHUNK = 8


def _take(dataset: RLDSDataset, count: int) -> list[dict]:
    return list(islice(iter(dataset), count))


def _expected_windows(raw_episodes, dataset: RLDSDataset) -> dict[str, dict]:
    """Per episode: every OFT chunk window of standardised, normalised actions [N, CHUNK, 7] and the
    normalised proprio at each window's start [N, 8], computed from the raw episodes."""
    statistics = dataset._statistics[SYNTHETIC_DATASET_NAME]
    windows = {}
    for episode in raw_episodes:
        action = episode.action.astype(np.float64)
        action[:, -1] = 1.0 - np.clip(action[:, -1], 0.0, 1.0)
        starts = np.arange(len(action) - (CHUNK - 1))
        chunks = action[starts[:, None] + np.arange(CHUNK)[None]]
        windows[episode.file_path] = {
            "actions": statistics.action.normalize(chunks),
            "proprio": statistics.proprio.normalize(episode.state[starts].astype(np.float64)),
            "instruction": episode.instruction,
            "episode_id": episode.episode_id,
        }
    return windows


def _locate(sample: dict, windows: dict) -> tuple[str, int]:
    """(episode file_path, start step) whose window equals the sample's actions; fails if there is none."""
    for file_path, episode in windows.items():
        matches = np.flatnonzero(np.all(np.abs(episode["actions"] - sample["actions"]) < 1e-5, axis=(1, 2)))
        if len(matches):
            return file_path, int(matches[0])
    raise AssertionError("sample actions match no chunk window of any episode")


def test_samples_follow_the_output_contract(make_config):
    dataset = build_dataset(make_config(image_size=224, image_aug=True))
    for sample in _take(dataset, 6):
        assert set(sample) == {"images", "instruction", "actions", "proprio", "dataset_name", "episode_id", "step",
                               "crop_boxes"}
        assert sample["crop_boxes"].shape == (2, 4) and sample["crop_boxes"].dtype == np.float32
        side = sample["crop_boxes"][:, 2:] - sample["crop_boxes"][:, :2]
        np.testing.assert_allclose(side, 0.9**0.5, atol=1e-6)  # the 90 % area square crop of each camera
        assert sample["images"].shape == (2, 224, 224, 3) and sample["images"].dtype == np.uint8
        assert sample["actions"].shape == (CHUNK, 7) and sample["actions"].dtype == np.float32
        assert sample["proprio"].shape == (8,) and sample["proprio"].dtype == np.float32
        assert np.all(np.abs(sample["actions"][:, :6]) <= 1.0) and np.all(np.abs(sample["proprio"]) <= 1.0)
        assert set(np.unique(sample["actions"][:, 6])) <= {0.0, 1.0}  # gripper: 1 open / 0 closed, not normalised
        assert isinstance(sample["instruction"], str) and sample["instruction"].startswith("pick up the ")
        assert sample["dataset_name"] == SYNTHETIC_DATASET_NAME
    assert dataset.samples_yielded == 6
    batch = next(iter(DataLoader(dataset, batch_size=3)))  # torch's default collation stacks the arrays
    assert batch["images"].shape == (3, 2, 224, 224, 3) and batch["actions"].shape == (3, CHUNK, 7)
    assert len(batch["instruction"]) == 3
    assert list(dataset.dataset_statistics) == [SYNTHETIC_DATASET_NAME]
    assert dataset.dataset_statistics[SYNTHETIC_DATASET_NAME]["action"]["mask"] == [True] * 6 + [False]


def test_samples_are_normalised_chunks_of_the_episodes(make_config, raw_episodes):
    dataset = build_dataset(make_config(image_aug=False))
    windows = _expected_windows(raw_episodes, dataset)
    seen = set()
    for sample in _take(dataset, 40):
        file_path, start = _locate(sample, windows)
        np.testing.assert_allclose(sample["proprio"], windows[file_path]["proprio"][start], atol=1e-6)
        assert sample["instruction"] == windows[file_path]["instruction"]
        # the sample key (episode tfds id, step) survives shuffling and names the frame it came from
        assert (sample["episode_id"], sample["step"]) == (windows[file_path]["episode_id"], start)
        np.testing.assert_array_equal(sample["crop_boxes"], np.tile([0.0, 0.0, 1.0, 1.0], (2, 1)))
        seen.add(file_path)
    assert len(seen) > 1  # the shuffle mixes episodes


def test_ranks_read_disjoint_shards(make_config, raw_episodes, rlds_root):
    world_size = 2
    windows = _expected_windows(raw_episodes, build_dataset(make_config()))
    builder = tfds.builder_from_directory(str(rlds_root / SYNTHETIC_DATASET_NAME / "1.0.0"))
    shard_episodes = []
    for split in tfds.even_splits("train", n=world_size):
        episodes = builder.as_dataset(split=split, decoders={"steps": tfds.decode.SkipDecoding()})
        shard_episodes.append({e["episode_metadata"]["file_path"].decode() for e in tfds.as_numpy(episodes)})
    assert not shard_episodes[0] & shard_episodes[1]
    assert shard_episodes[0] | shard_episodes[1] == set(windows)
    for rank in range(world_size):
        dataset = build_dataset(make_config(image_aug=False), rank=rank, world_size=world_size)
        seen = {_locate(sample, windows)[0] for sample in _take(dataset, 40)}
        assert seen == shard_episodes[rank], rank  # every episode of its shard, none of the other's


def test_restoring_the_iterator_reproduces_the_next_samples(make_config, tmp_path):
    config = make_config(image_aug=True)
    dataset = build_dataset(config)
    before = _take(dataset, 10)
    state_dir = dataset.save_state(tmp_path / "data")
    after = _take(dataset, 15)

    restored = build_dataset(config)
    restored.restore_state(state_dir)
    assert restored.samples_yielded == 10
    for expected, actual in zip(after, _take(restored, 15), strict=True):
        for key in ("images", "actions", "proprio"):
            np.testing.assert_array_equal(expected[key], actual[key])
        assert expected["instruction"] == actual["instruction"]

    fresh = _take(build_dataset(config), 25)  # the stream itself is a function of the seed
    for expected, actual in zip(before + after, fresh, strict=True):
        np.testing.assert_array_equal(expected["images"], actual["images"])
    other_seed = _take(build_dataset(make_config(image_aug=True, seed=4)), 5)
    assert not all(np.array_equal(a["actions"], b["actions"]) for a, b in zip(before, other_seed))

    with pytest.raises(ValueError, match="seed: saved 3, now 4"):
        build_dataset(make_config(image_aug=True, seed=4)).restore_state(state_dir)
    with pytest.raises(FileNotFoundError, match="No data iterator state"):
        restored.restore_state(tmp_path / "missing")


def test_augmentation_changes_images_not_the_stream(make_config):
    plain = _take(build_dataset(make_config(image_aug=False)), 8)
    augmented = _take(build_dataset(make_config(image_aug=True)), 8)
    for a, b in zip(plain, augmented):
        np.testing.assert_array_equal(a["actions"], b["actions"])
        assert a["images"].shape == b["images"].shape and b["images"].dtype == np.uint8
        assert not np.array_equal(a["images"], b["images"])


def test_save_dataset_statistics(make_config, tmp_path):
    dataset = build_dataset(make_config())
    path = dataset.save_dataset_statistics(tmp_path / "run")
    assert path == tmp_path / "run" / "dataset_statistics.json"
    assert json.loads(path.read_text()) == dataset.dataset_statistics
    loaded = load_dataset_statistics(tmp_path / "run")[SYNTHETIC_DATASET_NAME]
    assert loaded.num_transitions == dataset.dataset_statistics[SYNTHETIC_DATASET_NAME]["num_transitions"]


def test_synthetic_dataset_is_generated_on_first_use(tmp_path):
    config = DataConfig(
        data_root_dir=tmp_path / "cache", dataset="quickstart_no_noops", image_size=16, shuffle_buffer_size=8,
        synthetic=SyntheticDataConfig(generate=True, num_episodes=2, image_size=16, seed=5),
    )
    sample = next(iter(build_dataset(config)))
    assert (tmp_path / "cache" / "quickstart_no_noops" / "1.0.0" / "dataset_info.json").is_file()
    assert sample["images"].shape == (2, 16, 16, 3) and sample["dataset_name"] == "quickstart_no_noops"


def test_every_rank_needs_an_episode(make_config):
    with pytest.raises(ValueError, match="6 training episodes, fewer than world_size=7"):
        build_dataset(make_config(), rank=0, world_size=7)
    with pytest.raises(ValueError, match="rank=2 must lie in"):
        build_dataset(make_config(), rank=2, world_size=2)


def test_no_usable_episode_fails_instead_of_hanging(make_config):
    dataset = build_dataset(make_config(num_actions_chunk=100))  # longer than every episode
    with pytest.raises(RuntimeError, match="shorter than data.num_actions_chunk=100"):
        next(iter(dataset))
