"""`Policy`: every registered backbone loads from a policy directory and acts on raw observations; frames are
prepared as in training (centre crop after augmented training); bad observations are refused with the fix."""

import dataclasses

import draccus
import numpy as np
import pytest
import torch

from rocket_openvla.backbones import BackboneConfig, available_backbones
from rocket_openvla.data.config import CAMERA_VIEWS
from rocket_openvla.deploy import DeployConfig, ObservationError, Policy
from tests.backbones.pi0.test_policy import statistics

INSTRUCTION = "put the black bowl on the plate"


def tiny_backbone(name: str) -> BackboneConfig:
    backbone = draccus.decode(BackboneConfig, {"type": name})
    if name == "pi0":  # the tiny PI0's chunk matches the data's 8 actions
        backbone = draccus.decode(BackboneConfig, {"type": name, "policy": {"chunk_size": 8}})
    return backbone


def observation(seed: int = 0, side: int = 256) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in CAMERA_VIEWS]
    return frames, rng.uniform(-2, 4, 8).astype(np.float32)


def save_policy(backbone: BackboneConfig, directory, center_crop: bool = True):
    """A policy directory as `merge_lora.py` leaves it, from a random tiny model; returns the in-memory adapter."""
    adapter = backbone.build()
    adapter.set_dataset_statistics(statistics())
    adapter.save_pretrained(directory)
    DeployConfig(backbone, CAMERA_VIEWS, 224, center_crop).save(directory)
    return adapter


# lerobot's policies need their own venv: tests/integrations/lerobot/test_deploy.py runs this check there.
MAIN_ENV_BACKBONES = [name for name in available_backbones() if name != "lerobot"]


@pytest.mark.parametrize("name", MAIN_ENV_BACKBONES)
def test_every_backbone_predicts_from_its_saved_directory_what_the_trained_policy_predicts(name, tmp_path):
    adapter = save_policy(tiny_backbone(name), tmp_path / "policy")
    policy = Policy.from_pretrained(tmp_path / "policy")
    frames, state = observation()
    actions = policy.predict(frames, INSTRUCTION, state)
    assert actions.shape == policy.action_shape == (8, 7) and actions.dtype == np.float32
    expected = adapter.predict_actions(
        policy.prepare_images(frames)[None], [INSTRUCTION], torch.from_numpy(state)[None],
        generator=torch.Generator().manual_seed(policy.seed),
    )[0].numpy()
    np.testing.assert_allclose(actions, expected, atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(policy.predict(frames, INSTRUCTION, state), actions)  # sampling is seeded per call
    other_frames, other_state = observation(seed=1)
    assert not np.allclose(policy.predict(other_frames, INSTRUCTION, other_state), actions)


def test_frames_are_centre_cropped_exactly_when_the_policy_trained_with_augmentation(tmp_path):
    backbone = tiny_backbone("openvla")
    save_policy(backbone, tmp_path / "cropped", center_crop=True)
    cropped = Policy.from_pretrained(tmp_path / "cropped")
    uncropped = Policy(cropped.adapter, dataclasses.replace(cropped.config, center_crop=False))
    frame = np.zeros((256, 256, 3), np.uint8)
    frame[..., 1] = 200  # green, with a 4-pixel red border: 90% of the area keeps 2.6% off each side (6.6 pixels)
    frame[:4], frame[-4:], frame[:, :4], frame[:, -4:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
    with_crop, without_crop = cropped.prepare_images([frame, frame]), uncropped.prepare_images([frame, frame])
    assert with_crop.shape == without_crop.shape == (2, 224, 224, 3) and with_crop.dtype == torch.uint8
    assert without_crop[0, 0, 112, 0] > 150 and with_crop[0, 0, 112, 0] < 40  # red border pixel, gone after the crop
    assert abs(int(with_crop[0, 112, 112, 1]) - 200) <= 2  # the centre keeps its colour
    frames, state = observation()
    assert not np.allclose(cropped.predict(frames, INSTRUCTION, state), uncropped.predict(frames, INSTRUCTION, state))


@pytest.fixture(scope="module")
def openvla_policy(tmp_path_factory) -> Policy:
    directory = tmp_path_factory.mktemp("policy")
    save_policy(tiny_backbone("openvla"), directory)
    return Policy.from_pretrained(directory)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f, s: ([f[0]], s, INSTRUCTION), "list of 2 camera frames, in this order: primary, wrist"),
        (lambda f, s: (np.stack(f), s, INSTRUCTION), "got an array"),
        (lambda f, s: ([f[0].astype(np.float32), f[1]], s, INSTRUCTION), "primary frame is float32"),
        (lambda f, s: ([f[0], f[1][..., 0]], s, INSTRUCTION), r"wrist frame is uint8 \(256, 256\)"),
        (lambda f, s: (f, None, INSTRUCTION), "takes the robot state"),
        (lambda f, s: (f, s[:7], INSTRUCTION), r"state has shape \(7,\)"),
        (lambda f, s: (f, np.full(8, np.nan), INSTRUCTION), "non-finite"),
        (lambda f, s: (f, s, "  "), "instruction must be a non-empty string"),
    ],
)
def test_bad_observations_are_refused_with_the_fix(openvla_policy, change, message):
    frames, state = observation()
    images, state, instruction = change(frames, state)
    with pytest.raises(ObservationError, match=message):
        openvla_policy.predict(images, instruction, state)


def test_an_unknown_unnorm_key_names_the_known_ones(openvla_policy):
    frames, state = observation()
    with pytest.raises(ObservationError, match="synthetic_libero_no_noops"):
        openvla_policy.predict(frames, INSTRUCTION, state, unnorm_key="bridge")
