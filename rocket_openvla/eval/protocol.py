"""OpenVLA-OFT's LIBERO evaluation protocol, the parts that need no simulator (pure NumPy).

- Suites and their step limits: libero_spatial 220, libero_object 280, libero_goal 300, libero_10 520,
  libero_90 400 policy steps, after `NUM_STEPS_WAIT` = 10 steps of `DUMMY_ACTION` (arm still, gripper open) that
  let the objects settle.
- Frames: LIBERO renders upside down, so both cameras are rotated 180° (`rotate_180`); the policy gets the 256-px
  renders and resizes / centre-crops them itself (`Policy.prepare_images`).
- State `[8]`: end-effector position (3), its orientation as an axis-angle vector (3), the two gripper finger
  joints (2) — what the LIBERO RLDS datasets record.
- Actions `[chunk, 7]` (xyz delta, rotation delta, gripper): the policy's gripper value lives in [0, 1] with
  1 = open (the datasets' convention); the simulator wants -1 = open, +1 = close. `env_actions` rescales it to
  [-1, 1], binarises it with the sign and inverts it. A chunk is executed open-loop before the next query.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rocket_openvla.errors import ConfigError

# Policy steps allowed per episode (the wait steps come on top), as in OpenVLA / OpenVLA-OFT.
MAX_STEPS = {"libero_spatial": 220, "libero_object": 280, "libero_goal": 300, "libero_10": 520, "libero_90": 400}
# The four suites every paper reports (ROCKET's 98.5% is their average).
STANDARD_SUITES = ("libero_spatial", "libero_object", "libero_goal", "libero_10")
NUM_STEPS_WAIT = 10
DUMMY_ACTION = np.array([0, 0, 0, 0, 0, 0, -1], np.float64)  # simulator space: no motion, gripper open
ACTION_DIM = 7
STATE_DIM = 8


def rotate_180(image: np.ndarray) -> np.ndarray:
    """A LIBERO render `[H, W, 3]` the right way up (both axes flipped), as a contiguous copy."""
    return np.ascontiguousarray(image[::-1, ::-1])


def quat_to_axis_angle(quat: np.ndarray) -> np.ndarray:
    """Unit quaternion `[4]` in robosuite's (x, y, z, w) order -> axis-angle `[3]` (axis * angle, angle in [0, 2π]).

    The identity rotation (w = ±1) gives zeros.
    """
    quat = np.asarray(quat, np.float64)
    w = float(np.clip(quat[3], -1.0, 1.0))
    sin_half = np.sqrt(1.0 - w * w)
    if np.isclose(sin_half, 0.0):
        return np.zeros(3)
    return quat[:3] * 2.0 * np.arccos(w) / sin_half


def libero_state(observation: Mapping[str, np.ndarray]) -> np.ndarray:
    """The robot state `[8]` float32 from a LIBERO observation dict (module docstring)."""
    return np.concatenate(
        [
            observation["robot0_eef_pos"],
            quat_to_axis_angle(observation["robot0_eef_quat"]),
            observation["robot0_gripper_qpos"],
        ]
    ).astype(np.float32)


def env_actions(actions: np.ndarray) -> np.ndarray:
    """Policy actions `[..., 7]` (gripper in [0, 1], 1 = open) -> simulator actions (gripper -1 open, +1 close).

    The arm dimensions pass through unchanged; the gripper goes [0, 1] -> [-1, 1], then to its sign, then is
    negated (OpenVLA-OFT's `normalize_gripper_action(binarize=True)` followed by `invert_gripper_action`).
    """
    actions = np.array(actions, np.float64)
    if actions.shape[-1] != ACTION_DIM:
        raise ValueError(f"actions have {actions.shape[-1]} values each; LIBERO takes {ACTION_DIM} (xyz, rpy, gripper)")
    actions[..., -1] = -np.sign(2.0 * actions[..., -1] - 1.0)
    return actions


def max_steps(suite: str, override: int | None = None) -> int:
    """Policy steps allowed per episode of `suite` (`override` replaces the protocol's limit, e.g. smoke tests)."""
    if suite not in MAX_STEPS:
        raise ConfigError(f"suite={suite!r}; choose one of {tuple(MAX_STEPS)}")
    return MAX_STEPS[suite] if override is None else override
