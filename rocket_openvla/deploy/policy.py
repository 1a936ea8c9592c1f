"""`Policy`: one trained policy of any backbone, ready to act on raw observations.

    policy = Policy.from_pretrained("runs/quickstart/merged")     # or a run / checkpoint directory
    actions = policy.predict([agent_view, wrist_view], "put the bowl on the plate", state)   # [chunk, action_dim]

`predict` takes what a robot or simulator gives: camera frames (uint8 `[H, W, 3]`, in the policy's camera order),
the task in words and the raw robot state; it returns the un-normalised action chunk. It prepares the frames as
OpenVLA-OFT's evaluation does (JPEG round trip, training's resize, and the centre crop when the policy trained with
image augmentation: `DeployConfig`), normalises the state with the dataset statistics saved with the policy, and
checks the camera count, frame layout and state size first, naming the fix.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rocket_openvla.backbones.base import BackboneAdapter, device_autocast
from rocket_openvla.deploy.deploy_config import DeployConfig, locate_policy
from rocket_openvla.errors import UserError


class ObservationError(UserError, ValueError):
    """An observation that does not fit the policy (the message names what to change)."""


class Policy:
    """A policy directory loaded for inference (see the module docstring)."""

    def __init__(self, adapter: BackboneAdapter, config: DeployConfig, seed: int = 0, source: str = "") -> None:
        self.adapter, self.config, self.seed, self.source = adapter, config, seed, source
        adapter.policy.eval()

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        base: str | Path | None = None,
        device: str | torch.device = "cpu",
        dtype: str | None = None,
        seed: int = 0,
    ) -> Policy:
        """Load a merged policy directory (`merge_lora.py`'s output), a run directory (its latest checkpoint), a
        checkpoint directory or a checkpoint's `policy/` directory.

        Args:
            base: base model of a policy that holds only a LoRA adapter (default: the base the adapter records).
            dtype: weight dtype, "float32" / "bfloat16" / "float16" (default: the run's `backbone.dtype`).
            seed: starting noise of sampling heads (diffusion, flow matching), reset on every call, so equal
                observations give equal actions.
        """
        policy_dir, config = locate_policy(path)
        backbone = config.backbone.for_policy_dir(policy_dir, base)
        if dtype is not None:
            backbone = dataclasses.replace(backbone, dtype=dtype)
        adapter = backbone.build()
        adapter.policy.to(device)
        return cls(adapter, config, seed, str(policy_dir))

    @property
    def cameras(self) -> tuple[str, ...]:
        return self.config.cameras

    @property
    def state_dim(self) -> int | None:
        return self.adapter.state_dim

    @property
    def action_shape(self) -> tuple[int, int]:
        """`(chunk, action_dim)` of one prediction."""
        return self.adapter.action_chunk, self.adapter.action_dim

    @property
    def unnorm_keys(self) -> list[str]:
        """Datasets whose statistics can scale the actions (`predict(..., unnorm_key=...)`)."""
        return sorted(self.adapter.policy.statistics)

    def predict(
        self,
        images: Sequence[np.ndarray],
        instruction: str,
        state: np.ndarray | None = None,
        unnorm_key: str | None = None,
    ) -> np.ndarray:
        """The un-normalised action chunk `[chunk, action_dim]` (float32) for one observation.

        Args:
            images: one uint8 `[H, W, 3]` RGB frame per camera, in `self.cameras` order.
            instruction: the task, e.g. "put the black bowl on the plate".
            state: the raw robot state `[state_dim]` as the dataset records it (LIBERO: end-effector position,
                axis-angle orientation, 2 gripper joints); ignored when the policy takes no state.
            unnorm_key: the dataset whose statistics scale the actions (may be omitted with one dataset).
        """
        frames = self.prepare_images(images)
        proprio = self._check_state(state)
        if not isinstance(instruction, str) or not instruction.strip():
            raise ObservationError(f"instruction must be a non-empty string, got {instruction!r}")
        if unnorm_key is not None and unnorm_key not in self.unnorm_keys:
            raise ObservationError(f"unnorm_key={unnorm_key!r} has no statistics; available: {self.unnorm_keys}")
        device = self.adapter.device
        generator = torch.Generator(device).manual_seed(self.seed)
        with torch.inference_mode(), device_autocast(device):
            actions = self.adapter.predict_actions(
                frames[None], [instruction], None if proprio is None else proprio[None], unnorm_key, generator
            )
        return actions[0].float().cpu().numpy()

    def prepare_images(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Camera frames -> uint8 `[V, S, S, 3]` as the policy saw frames in training (module docstring)."""
        from rocket_openvla.data.augment import eval_frame
        from rocket_openvla.data.tf_runtime import tf

        cameras = self.config.cameras
        if isinstance(images, np.ndarray) or len(images) != len(cameras):
            count = "an array" if isinstance(images, np.ndarray) else f"{len(images)} images"
            raise ObservationError(
                f"got {count}; the policy takes a list of {len(cameras)} camera frames, in this order: "
                f"{', '.join(cameras)}"
            )
        for camera, image in zip(cameras, images):
            if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                found = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
                raise ObservationError(f"the {camera} frame is {found}; pass uint8 RGB [H, W, 3]")
            if min(image.shape[:2]) < 1:
                raise ObservationError(f"the {camera} frame is empty: {image.shape}")
        frames = [eval_frame(tf.constant(image), self.config.image_size, self.config.center_crop) for image in images]
        return torch.from_numpy(np.stack([frame.numpy() for frame in frames]))

    def _check_state(self, state: np.ndarray | None) -> torch.Tensor | None:
        if self.state_dim is None:
            return None
        if state is None:
            raise ObservationError(f"the policy takes the robot state ({self.state_dim} values); pass state")
        values = np.asarray(state)
        if values.shape != (self.state_dim,) or not np.issubdtype(values.dtype, np.number):
            raise ObservationError(
                f"state has shape {values.shape} and dtype {values.dtype}; the policy takes {self.state_dim} numbers "
                "(the raw state as the training dataset records it)"
            )
        if not np.isfinite(values).all():
            raise ObservationError(f"state has non-finite values: {values.tolist()}")
        return torch.as_tensor(values, dtype=torch.float32)

