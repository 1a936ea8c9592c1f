import numpy as np

from rocket_openvla.data.synthetic.episodes import STEP_METRES, generate_episodes


def _episodes(num: int = 3, seed: int = 0) -> list[dict]:
    return [episode for _, episode in generate_episodes(num, image_size=16, seed=seed)]


def test_episodes_are_scripted_pick_ups():
    for episode in _episodes():
        steps = episode["steps"]
        action = np.stack([step["action"] for step in steps])
        state = np.stack([step["observation"]["state"] for step in steps])
        assert 15 <= len(steps) <= 45
        assert steps[0]["is_first"] and steps[-1]["is_last"] and steps[-1]["is_terminal"]
        assert not any(step["is_last"] for step in steps[:-1])
        assert [step["reward"] for step in steps] == [0.0] * (len(steps) - 1) + [1.0]
        instruction = steps[0]["language_instruction"]
        assert instruction.startswith("pick up the ") and all(s["language_instruction"] == instruction for s in steps)
        gripper = action[:, -1]
        assert gripper[0] == -1.0 and gripper[-1] == 1.0  # LIBERO raw convention: -1 open, +1 close
        assert np.all(np.abs(action[:, :6]) <= 1.0)
        # The state integrates the translation actions; the fingers close after the close command.
        np.testing.assert_allclose(np.diff(state[:, :3], axis=0), STEP_METRES * action[:-1, :3], atol=1e-6)
        closing = int(np.argmax(gripper > 0))
        assert state[closing, 6] > state[-1, 6] and state[-1, 6] == -state[-1, 7]
        assert state[-1, 2] > state[closing, 2] + 0.08  # lifted after closing
        for step in steps:
            assert step["observation"]["image"].shape == (16, 16, 3) and step["observation"]["image"].dtype == np.uint8
            assert step["observation"]["joint_state"].shape == (7,)


def test_episodes_depend_only_on_seed_and_index():
    first, again, other = _episodes(2, seed=0), _episodes(2, seed=0), _episodes(2, seed=1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a["steps"][3]["observation"]["image"], b["steps"][3]["observation"]["image"])
        np.testing.assert_array_equal(a["steps"][3]["action"], b["steps"][3]["action"])
    assert not np.array_equal(first[0]["steps"][0]["action"], other[0]["steps"][0]["action"])
