"""What an evaluation queries for actions: a policy directory, a remote `/act` server, or a baseline.

Every kind answers `act(frames, state, instruction)` with an action chunk `[chunk, 7]` in the policy's action space
(gripper in [0, 1], 1 = open: `protocol.env_actions` converts it for the simulator). `frames` maps camera names
(`CAMERA_VIEWS`: "primary" = LIBERO's agent view, "wrist" = its eye-in-hand camera) to uint8 `[H, W, 3]` frames
already the right way up; `state` is the raw 8-value LIBERO state.

`policy` strings (`make_policy`):
- `random`: arm actions uniform in [-1, 1], gripper uniform in [0, 1], 8 per chunk; seeded per episode.
- `zero`: all zeros, 8 per chunk (the arm stays still; gripper 0 = closed).
- `http://host:port`: a server started with `vla-scripts/serve_policy.py` (OpenVLA-OFT's `/act` protocol).
- anything else: a policy directory for `Policy.from_pretrained` (merged, run or checkpoint directory).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rocket_openvla.data.config import CAMERA_VIEWS
from rocket_openvla.errors import ConfigError
from rocket_openvla.eval.protocol import ACTION_DIM

BASELINE_CHUNK = 8  # OpenVLA-OFT's open-loop chunk
BASELINES = ("random", "zero")
# OpenVLA-OFT's observation keys for our camera names.
SERVER_IMAGE_KEYS = {"primary": "full_image", "wrist": "wrist_image"}


class EvalPolicy:
    """A source of action chunks (module docstring)."""

    def reset(self, seed: int) -> None:
        """Start an episode (baselines reseed; trained policies are deterministic per observation)."""

    def act(self, frames: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        raise NotImplementedError


class RandomPolicy(EvalPolicy):
    def __init__(self) -> None:
        self.rng = np.random.default_rng(0)

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, frames: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        actions = self.rng.uniform(-1.0, 1.0, (BASELINE_CHUNK, ACTION_DIM))
        actions[:, -1] = self.rng.uniform(0.0, 1.0, BASELINE_CHUNK)
        return actions.astype(np.float32)


class ZeroPolicy(EvalPolicy):
    def act(self, frames: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        return np.zeros((BASELINE_CHUNK, ACTION_DIM), np.float32)


def _check_cameras(cameras: tuple[str, ...], where: str) -> None:
    unknown = [camera for camera in cameras if camera not in CAMERA_VIEWS]
    if unknown:
        raise ConfigError(
            f"{where} takes cameras {list(cameras)}; LIBERO renders {list(CAMERA_VIEWS)} (agent view, wrist): "
            "evaluate a policy trained on LIBERO's cameras"
        )


class LocalPolicy(EvalPolicy):
    """A `Policy` loaded in this process."""

    def __init__(self, policy, unnorm_key: str | None = None) -> None:
        _check_cameras(policy.cameras, f"the policy in {policy.source or 'memory'}")
        if policy.action_shape[1] != ACTION_DIM:
            raise ConfigError(f"the policy predicts {policy.action_shape[1]} action values; LIBERO takes {ACTION_DIM}")
        self.policy, self.unnorm_key = policy, unnorm_key

    def act(self, frames: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        images = [frames[camera] for camera in self.policy.cameras]
        return self.policy.predict(images, instruction, state, self.unnorm_key)


class ServerPolicy(EvalPolicy):
    """A policy behind `serve_policy.py`'s `/act` route."""

    def __init__(self, url: str, unnorm_key: str | None = None) -> None:
        from rocket_openvla.deploy.client import PolicyClient

        self.client, self.unnorm_key = PolicyClient(url), unnorm_key
        self.cameras = tuple(self.client.health()["cameras"])
        _check_cameras(self.cameras, f"the server at {url}")

    def act(self, frames: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        observation = {SERVER_IMAGE_KEYS[camera]: frames[camera] for camera in self.cameras}
        observation.update(state=state, instruction=instruction)
        if self.unnorm_key is not None:
            observation["unnorm_key"] = self.unnorm_key
        return self.client.act(observation)


def loads_model(spec: str) -> bool:
    """Whether a `policy` string names a policy directory (rather than a baseline or a server URL)."""
    return spec not in BASELINES and not spec.startswith(("http://", "https://"))


def make_policy(
    spec: str, device: str = "cpu", dtype: str | None = None, unnorm_key: str | None = None
) -> EvalPolicy:
    """The policy a `policy` string names (module docstring)."""
    if spec == "random":
        return RandomPolicy()
    if spec == "zero":
        return ZeroPolicy()
    if not loads_model(spec):
        return ServerPolicy(spec, unnorm_key)
    from rocket_openvla.deploy.policy import Policy

    return LocalPolicy(Policy.from_pretrained(spec, device=device, dtype=dtype), unnorm_key)
