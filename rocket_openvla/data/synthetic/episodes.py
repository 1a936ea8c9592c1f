"""Scripted pick-up episodes in LIBERO's RLDS step layout.

Each episode: 3 objects on the table, one named in the instruction ("pick up the red block"); a scripted
controller moves the gripper above the target, descends, closes the gripper and lifts the object.
Conventions follow LIBERO's `*_no_noops` RLDS data (openvla/modified_libero_rlds):
- `action` [7] = EEF translation delta (3) + rotation delta (3), in units of `STEP_METRES` per step, clipped to
  [-1, 1], + gripper command (-1 open ... +1 close);
- `observation/state` [8] = EEF position (3) + axis-angle (3) + gripper finger positions (2);
- step t holds the observation before action t is applied.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from rocket_openvla.data.synthetic.scene import (
    COLOURS,
    GRIPPER_RADIUS,
    OBJECT_HALF_SIZE,
    SHAPES,
    SceneObject,
    primary_camera,
    render,
    wrist_camera,
)

STEP_METRES = 0.02
HOVER_HEIGHT = 0.10
LIFT_HEIGHT = 0.12
FINGER_OPEN = 0.04
_ACTION_NOISE = 0.05
_ROTATION_NOISE = 0.02
_CLOSE_STEPS = 3
_MAX_STEPS = 80
# A fixed linear map from the EEF pose to a plausible 7-DoF joint vector (the data has no kinematics).
_JOINT_MAP = np.random.default_rng(1234).normal(size=(6, 7))


def sample_objects(rng: np.random.Generator, num_objects: int = 3) -> list[SceneObject]:
    """Distinct colour/shape pairs at table positions at least 0.1 m apart."""
    colours = rng.choice(list(COLOURS), size=num_objects, replace=False)
    positions: list[np.ndarray] = []
    while len(positions) < num_objects:
        candidate = np.array([*rng.uniform(-0.22, 0.22, size=2), OBJECT_HALF_SIZE])
        if all(np.linalg.norm(candidate[:2] - p[:2]) >= 0.1 for p in positions):
            positions.append(candidate)
    return [SceneObject(str(c), str(rng.choice(SHAPES)), p) for c, p in zip(colours, positions)]


@dataclass
class _PickUpController:
    """Scripted pick-up: hover above the grasp point, descend, close the gripper, lift."""

    grasp_point: np.ndarray  # [3] where the gripper holds the object
    phase: str = "hover"
    closing_steps: int = 0
    lift_goal: float = 0.0

    def command(self, gripper: np.ndarray) -> tuple[np.ndarray, bool] | None:
        """(translation command [3] in [-1, 1], gripper closed?) at EEF position `gripper`; None when done."""
        if self.phase in ("hover", "descend"):
            goal = self.grasp_point + (np.array([0.0, 0.0, HOVER_HEIGHT]) if self.phase == "hover" else 0.0)
            error = goal - gripper
            if np.max(np.abs(error)) >= 0.5 * STEP_METRES:
                return np.clip(error / STEP_METRES, -1.0, 1.0), False
            self.phase = "descend" if self.phase == "hover" else "close"
            return self.command(gripper)
        if self.phase == "close":
            if self.closing_steps < _CLOSE_STEPS:
                self.closing_steps += 1
                return np.zeros(3), True
            self.phase, self.lift_goal = "lift", gripper[2] + LIFT_HEIGHT
        remaining = self.lift_goal - gripper[2]
        if remaining < 0.5 * STEP_METRES:
            return None
        return np.array([0.0, 0.0, min(1.0, remaining / STEP_METRES)]), True


def scripted_episode(rng: np.random.Generator, image_size: int) -> list[dict]:
    """Roll out one episode: its RLDS step dicts (`image_size`² images)."""
    objects = sample_objects(rng)
    target = objects[int(rng.integers(len(objects)))]
    grasp_offset = np.array([0.0, 0.0, target.half_size + 0.5 * GRIPPER_RADIUS])  # gripper rests on the object
    controller = _PickUpController(target.position + grasp_offset)
    gripper = np.array([*rng.uniform(-0.2, 0.2, size=2), rng.uniform(0.25, 0.32)])
    rotation, fingers = np.zeros(3), FINGER_OPEN
    camera = primary_camera(image_size)
    steps: list[dict] = []
    while len(steps) < _MAX_STEPS and (command := controller.command(gripper)) is not None:
        translation, closed = command
        translation = np.clip(translation + rng.normal(0.0, _ACTION_NOISE, size=3), -1.0, 1.0)
        rotation_delta = rng.normal(0.0, _ROTATION_NOISE, size=3)
        action = np.concatenate([translation, rotation_delta, [1.0 if closed else -1.0]]).astype(np.float32)
        steps.append(_observe(camera, objects, gripper, rotation, fingers, image_size) | {"action": action})
        gripper = gripper + translation * STEP_METRES
        rotation = rotation + rotation_delta * STEP_METRES
        fingers = max(0.0, fingers - 0.015) if closed else min(FINGER_OPEN, fingers + 0.015)
        if controller.phase == "lift":
            target.position = gripper - grasp_offset  # the held object moves with the gripper
    return _with_episode_flags(steps, f"pick up the {target.name}")


def _observe(camera, objects, gripper, rotation, fingers, image_size) -> dict:
    pose = np.concatenate([gripper, rotation])
    return {
        "observation": {
            "image": render(camera, objects, gripper),
            "wrist_image": render(wrist_camera(gripper, image_size), objects, None),
            "state": np.concatenate([pose, [fingers, -fingers]]).astype(np.float32),
            "joint_state": np.tanh(pose @ _JOINT_MAP).astype(np.float32),
        }
    }


def _with_episode_flags(steps: list[dict], instruction: str) -> list[dict]:
    last = len(steps) - 1
    for t, step in enumerate(steps):
        step.update(
            reward=np.float32(t == last),
            discount=np.float32(1.0),
            is_first=t == 0,
            is_last=t == last,
            is_terminal=t == last,
            language_instruction=instruction,
        )
    return steps


def generate_episodes(num_episodes: int, image_size: int, seed: int) -> Iterator[tuple[str, dict]]:
    """Yield (key, RLDS episode) pairs; episode i depends only on (seed, i)."""
    for index in range(num_episodes):
        rng = np.random.default_rng([seed, index])
        steps = scripted_episode(rng, image_size)
        key = f"episode_{index:05d}"
        yield key, {"steps": steps, "episode_metadata": {"file_path": f"synthetic/{key}"}}
