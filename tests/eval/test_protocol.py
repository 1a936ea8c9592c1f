"""OpenVLA-OFT's LIBERO protocol without the simulator: frame rotation, state, gripper conversion, step limits, and
the episode loop's step accounting on a scripted stand-in simulator."""

import numpy as np
import pytest

from rocket_openvla.errors import ConfigError
from rocket_openvla.eval.libero import run_episode
from rocket_openvla.eval.policies import EvalPolicy, RandomPolicy, ZeroPolicy
from rocket_openvla.eval.protocol import (
    DUMMY_ACTION,
    env_actions,
    libero_state,
    max_steps,
    quat_to_axis_angle,
    rotate_180,
)


def test_frames_are_turned_the_right_way_up_by_flipping_both_axes():
    image = np.arange(4 * 6 * 3, dtype=np.uint8).reshape(4, 6, 3)
    turned = rotate_180(image)
    assert turned.flags["C_CONTIGUOUS"] and turned.shape == image.shape
    np.testing.assert_array_equal(turned[0, 0], image[3, 5])
    np.testing.assert_array_equal(turned[3, 0], image[0, 5])
    np.testing.assert_array_equal(turned, np.rot90(image, 2))
    np.testing.assert_array_equal(rotate_180(turned), image)


@pytest.mark.parametrize("angle", [0.3, 1.0, 2.5, 3.1])
def test_axis_angle_recovers_the_rotation_a_quaternion_was_built_from(angle):
    rng = np.random.default_rng(int(angle * 10))
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    quat = np.concatenate([axis * np.sin(angle / 2), [np.cos(angle / 2)]])  # robosuite's (x, y, z, w)
    np.testing.assert_allclose(quat_to_axis_angle(quat), axis * angle, atol=1e-9)
    np.testing.assert_array_equal(quat_to_axis_angle(np.array([0.0, 0.0, 0.0, 1.0])), np.zeros(3))


def test_state_is_position_axis_angle_and_finger_joints():
    observation = {
        "robot0_eef_pos": np.array([0.1, -0.2, 1.1]),
        "robot0_eef_quat": np.array([1.0, 0.0, 0.0, 0.0]),  # half a turn about x
        "robot0_gripper_qpos": np.array([0.04, -0.04]),
        "robot0_joint_pos": np.zeros(7),
    }
    state = libero_state(observation)
    assert state.dtype == np.float32 and state.shape == (8,)
    np.testing.assert_allclose(state, [0.1, -0.2, 1.1, np.pi, 0.0, 0.0, 0.04, -0.04], rtol=1e-6)


def test_gripper_is_binarised_rescaled_and_inverted_and_the_arm_passes_through():
    policy_actions = np.array([[0.1, -0.2, 0.3, 0.01, 0.02, -0.03, gripper] for gripper in (0.0, 0.2, 0.7, 1.0)])
    converted = env_actions(policy_actions)
    np.testing.assert_array_equal(converted[:, :6], policy_actions[:, :6])
    np.testing.assert_array_equal(converted[:, 6], [1.0, 1.0, -1.0, -1.0])  # dataset 1 = open -> simulator -1
    assert policy_actions[0, 6] == 0.0  # the input is left alone
    np.testing.assert_array_equal(env_actions([0, 0, 0, 0, 0, 0, 1.0]), DUMMY_ACTION)  # the wait action is "open"
    with pytest.raises(ValueError, match="LIBERO takes 7"):
        env_actions(np.zeros((8, 6)))


def test_step_limits_are_openvla_ofts_unless_overridden():
    assert [max_steps(s) for s in ("libero_spatial", "libero_object", "libero_goal", "libero_10", "libero_90")] == [
        220, 280, 300, 520, 400]
    assert max_steps("libero_10", 30) == 30
    with pytest.raises(ConfigError, match="suite='libero_100'"):
        max_steps("libero_100")


class ScriptedSimulator:
    """LIBERO's env interface (reset / set_init_state / step), reporting success at a chosen step."""

    def __init__(self, succeed_at: int | None) -> None:
        self.succeed_at, self.actions = succeed_at, []

    def observation(self) -> dict[str, np.ndarray]:
        image = np.zeros((32, 32, 3), np.uint8)
        image[0, 0] = len(self.actions)  # the top-left pixel counts steps (bottom-right after the rotation)
        return {"agentview_image": image, "robot0_eye_in_hand_image": image, "robot0_eef_pos": np.zeros(3),
                "robot0_eef_quat": np.array([0.0, 0.0, 0.0, 1.0]), "robot0_gripper_qpos": np.zeros(2)}

    def reset(self):
        self.actions = []

    def set_init_state(self, state):
        return self.observation()

    def step(self, action):
        self.actions.append(np.asarray(action))
        done = self.succeed_at is not None and len(self.actions) == self.succeed_at
        return self.observation(), float(done), done, {}


class CountingPolicy(EvalPolicy):
    """Chunks of 8 whose first value numbers the query; records the frames it was shown."""

    def __init__(self) -> None:
        self.queries = []

    def act(self, frames, state, instruction):
        self.queries.append(frames)
        chunk = np.zeros((8, 7), np.float32)
        chunk[:, 0] = len(self.queries)
        chunk[:, 6] = 1.0
        return chunk


@pytest.mark.parametrize(("open_loop", "expected_queries"), [(None, 3), (4, 5), (1, 20)])
def test_an_episode_waits_then_runs_chunks_open_loop_until_the_step_limit(open_loop, expected_queries):
    simulator, policy, frames = ScriptedSimulator(succeed_at=None), CountingPolicy(), []
    success, steps = run_episode(simulator, np.zeros(5), policy, "task", 20, 10, open_loop, frames)
    assert (success, steps) == (False, 20) and len(simulator.actions) == 30 and len(frames) == 20
    for action in simulator.actions[:10]:
        np.testing.assert_array_equal(action, DUMMY_ACTION)
    assert len(policy.queries) == expected_queries
    first_values = [action[0] for action in simulator.actions[10:]]
    assert first_values == [1 + i // (open_loop or 8) for i in range(20)]
    assert all(action[6] == -1.0 for action in simulator.actions[10:])  # open, converted for the simulator
    assert policy.queries[0]["primary"][-1, -1, 0] == 10  # the frame after the wait steps, turned upright


def test_an_episode_ends_at_the_first_success_after_the_wait():
    simulator = ScriptedSimulator(succeed_at=3)  # inside the wait: ignored
    assert run_episode(simulator, np.zeros(5), ZeroPolicy(), "task", 20, 10) == (False, 20)
    simulator = ScriptedSimulator(succeed_at=10 + 13)
    assert run_episode(simulator, np.zeros(5), ZeroPolicy(), "task", 20, 10) == (True, 13)


def test_the_random_baseline_covers_the_action_ranges_and_repeats_per_seed():
    policy = RandomPolicy()
    policy.reset(3)
    first = policy.act({}, np.zeros(8), "task")
    policy.reset(3)
    np.testing.assert_array_equal(policy.act({}, np.zeros(8), "task"), first)
    assert first.shape == (8, 7) and np.abs(first).max() <= 1 and (first[:, 6] >= 0).all()
    policy.reset(4)
    assert not np.array_equal(policy.act({}, np.zeros(8), "task"), first)
