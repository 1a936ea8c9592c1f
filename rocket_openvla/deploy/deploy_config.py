"""`DeployConfig`: what loading and feeding a saved policy needs beyond its weights, `deploy_config.json`.

The backbone config says which family builds the policy (its checkpoint paths point at the policy directory
itself when loaded); the camera order and frame preparation say what training did to camera frames, so inference
does the same (OpenVLA-OFT's evaluation: frames resized like training frames, and centre-cropped when the policy
trained with image augmentation — forgetting the crop costs a large share of LIBERO success).

`merge_lora.py` writes the file beside the merged weights. A checkpoint of a run has none: its config comes from
the run's `config.yaml` (copied into every checkpoint directory).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import draccus

from rocket_openvla.backbones import BackboneConfig
from rocket_openvla.data.config import CAMERA_VIEWS
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.files import write_text
from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, CONFIG_NAME, POLICY_DIR, latest_checkpoint
from rocket_openvla.training.config import FinetuneConfig

DEPLOY_CONFIG_NAME = "deploy_config.json"
_RUN_DIR_DEPTH = 3  # <run>/checkpoints/step_N/policy


@dataclass(frozen=True)
class DeployConfig:
    """How a policy directory is built and how camera frames reach it."""

    # The run's backbone config (family, dtype, attention kernel, ...); its checkpoint paths are not used.
    backbone: BackboneConfig
    # Camera names in the order the policy takes them (LIBERO: primary, then wrist).
    cameras: tuple[str, ...]
    # Side of the square frames the policy trained on (`data.image_size`).
    image_size: int
    # Take the centre crop of 90% of the area (the policy trained with `data.image_aug`'s random crops).
    center_crop: bool

    @classmethod
    def from_finetune_config(cls, config: FinetuneConfig) -> DeployConfig:
        return cls(config.backbone, CAMERA_VIEWS, config.data.image_size, config.data.image_aug)

    def to_dict(self) -> dict[str, Any]:
        backbone = {"type": self.backbone.type, **draccus.encode(self.backbone.for_policy_dir("."))}
        return {"backbone": backbone, "cameras": list(self.cameras), "image_size": self.image_size,
                "center_crop": self.center_crop}

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / DEPLOY_CONFIG_NAME
        write_text(path, json.dumps(self.to_dict(), indent=2))
        return path

    @classmethod
    def load(cls, path: str | Path) -> DeployConfig:
        path = Path(path)
        values = json.loads(path.read_text())
        try:
            return cls(draccus.decode(BackboneConfig, values["backbone"]), tuple(values["cameras"]),
                       int(values["image_size"]), bool(values["center_crop"]))
        except (KeyError, TypeError, draccus.utils.DecodingError) as error:
            raise ConfigError(f"{path} is not a valid {DEPLOY_CONFIG_NAME}: {error}") from error


def locate_policy(path: str | Path) -> tuple[Path, DeployConfig]:
    """The policy directory and `DeployConfig` of a merged policy directory, a run directory (its latest
    checkpoint), a checkpoint directory or a checkpoint's `policy/` directory."""
    path = Path(path)
    if (path / DEPLOY_CONFIG_NAME).is_file():
        return path, DeployConfig.load(path / DEPLOY_CONFIG_NAME)
    policy_dir, run_dir = resolve_policy_dir(path)
    return policy_dir, DeployConfig.from_finetune_config(read_run_config(run_dir))


def resolve_policy_dir(path: Path) -> tuple[Path, Path]:
    """`(policy directory, run directory)` of a run, checkpoint or policy directory."""
    if (path / CHECKPOINTS_DIR).is_dir():
        checkpoint = latest_checkpoint(path)
        if checkpoint is None:
            raise MissingInputError(f"{path} is a run directory without a finished checkpoint")
        return checkpoint / POLICY_DIR, path
    if (path / POLICY_DIR).is_dir():
        return path / POLICY_DIR, path.parent.parent
    if path.is_dir():
        for parent in path.resolve().parents[:_RUN_DIR_DEPTH]:
            if (parent / CONFIG_NAME).is_file() and (parent / CHECKPOINTS_DIR).is_dir():
                return path, parent
    raise MissingInputError(
        f"{path} is neither a merged policy directory (with {DEPLOY_CONFIG_NAME}), a run directory (with "
        f"{CHECKPOINTS_DIR}/), a checkpoint directory (with {POLICY_DIR}/) nor a policy directory inside a run"
    )


def read_run_config(run_dir: Path) -> FinetuneConfig:
    """The `FinetuneConfig` a run was trained with (its `config.yaml`)."""
    path = run_dir / CONFIG_NAME
    if not path.is_file():
        raise MissingInputError(f"{run_dir} has no {CONFIG_NAME}: the run's config is needed to rebuild its policy")
    with open(path) as handle:
        return draccus.load(FinetuneConfig, handle)
