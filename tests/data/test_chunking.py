import numpy as np
import pytest

from rocket_openvla.data.chunking import chunk_actions
from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME
from rocket_openvla.data.rlds import open_builder, read_trajectories
from rocket_openvla.data.tf_runtime import tf


def _chunk(traj_len: int, chunk: int) -> dict:
    action = np.arange(traj_len * 2, dtype=np.float32).reshape(traj_len, 2)
    trajectory = {"action": tf.constant(action), "proprio": tf.constant(action[:, :1] * 10)}
    return {key: value.numpy() for key, value in chunk_actions(trajectory, chunk).items()}


def test_windows_follow_ofts_rule_at_the_episode_end():
    frames = _chunk(traj_len=10, chunk=4)
    starts = np.arange(10 - (4 - 1))  # OFT keeps T - (chunk - 1) start steps
    expected_indices = starts[:, None] + np.arange(4)[None]
    assert frames["actions"].shape == (7, 4, 2)
    np.testing.assert_array_equal(frames["actions"][..., 0] / 2, expected_indices)
    assert expected_indices[-1, -1] == 9  # the last window ends exactly on the last step
    np.testing.assert_array_equal(frames["proprio"][:, 0], starts * 20)  # observation = the start step


@pytest.mark.parametrize("traj_len, expected_frames", [(3, 0), (4, 1), (5, 2)])
def test_short_trajectories(traj_len, expected_frames):
    assert len(_chunk(traj_len, chunk=4)["actions"]) == expected_frames


def test_chunk_of_one_keeps_every_step():
    frames = _chunk(traj_len=5, chunk=1)
    np.testing.assert_array_equal(frames["actions"][:, 0, 0], np.arange(5) * 2)


def test_generated_episodes_chunk_to_their_last_step(rlds_root, raw_episodes):
    builder = open_builder(rlds_root, SYNTHETIC_DATASET_NAME)
    chunk = 8
    for trajectory, raw in zip(read_trajectories(builder, "train"), raw_episodes):
        frames = chunk_actions(trajectory, chunk)
        actions = frames["actions"].numpy()
        traj_len = len(raw.action)
        assert actions.shape == (traj_len - (chunk - 1), chunk, 7)
        # The last chunk is the final `chunk` actions (standardised gripper: clip to [0, 1], then 1 - x).
        expected_last = raw.action[-chunk:].copy()
        expected_last[:, -1] = 1.0 - np.clip(expected_last[:, -1], 0.0, 1.0)
        np.testing.assert_allclose(actions[-1], expected_last)
        np.testing.assert_allclose(frames["proprio"].numpy(), raw.state[: traj_len - (chunk - 1)])
