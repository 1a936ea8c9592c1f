"""`rocket_openvla.deploy.Policy` for a lerobot policy: its saved directory predicts, from raw observations, what the
trained policy predicts (the other backbones: tests/deploy/test_policy.py)."""

import numpy as np
import pytest
import torch

from tests.integrations.lerobot.helpers import INSTRUCTIONS, SKIP_REASON, tiny_options

pytest.importorskip("lerobot", reason=SKIP_REASON)

from rocket_openvla.data.config import CAMERA_VIEWS  # noqa: E402
from rocket_openvla.deploy import DeployConfig, Policy  # noqa: E402
from rocket_openvla.normalization import DatasetStatistics, FeatureStatistics  # noqa: E402


def test_a_saved_lerobot_policy_acts_on_raw_observations_as_the_trained_one(tmp_path):
    backbone = tiny_options("pi05")
    adapter = backbone.build()
    values = np.random.default_rng(0).uniform(-3, 5, (200, 8))
    adapter.set_dataset_statistics({"synthetic_libero_no_noops": DatasetStatistics(
        action=FeatureStatistics.from_values(values[:, :7]), proprio=FeatureStatistics.from_values(values))})
    adapter.save_pretrained(tmp_path / "policy")
    DeployConfig(backbone, CAMERA_VIEWS, 224, True).save(tmp_path / "policy")

    policy = Policy.from_pretrained(tmp_path / "policy")
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in CAMERA_VIEWS]
    state = rng.uniform(-2, 4, 8).astype(np.float32)
    actions = policy.predict(frames, INSTRUCTIONS[0], state)
    assert actions.shape == policy.action_shape == (adapter.action_chunk, 7)
    expected = adapter.predict_actions(policy.prepare_images(frames)[None], [INSTRUCTIONS[0]],
                                       torch.from_numpy(state)[None], generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(actions, expected[0].numpy(), atol=1e-5, rtol=1e-5)
    np.testing.assert_array_equal(policy.predict(frames, INSTRUCTIONS[0], state), actions)
