"""Merging any checkpoint of a run trained without `merge_at_end`: through the entry point, for openvla and pi0."""

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from rocket_openvla.backbones.openvla.policy import OpenVLAPolicy
from rocket_openvla.deploy import Policy
from rocket_openvla.deploy.deploy_config import DEPLOY_CONFIG_NAME
from rocket_openvla.deploy.merge import MergeConfig, merge_checkpoint, probe_batch, probe_outputs
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, POLICY_DIR
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.loop import Trainer
from tests.training.conftest import load_config

SINGLE = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
ENTRY = Path(__file__).resolve().parents[2] / "vla-scripts" / "merge_lora.py"


def _train(rlds_root, runs, backbone="openvla"):
    return Trainer(load_config(rlds_root, runs, backbone, run={"max_steps": 2, "save_freq": 1}), SINGLE).train()


def test_a_run_from_random_weights_merges_and_predicts_what_its_adapter_predicts(rlds_root, tmp_path):
    run_dir = _train(rlds_root, tmp_path / "runs")
    moved = tmp_path / "moved"
    shutil.move(run_dir, moved)  # a policy finds its run's base_model/ also after the run directory moved
    first = moved / CHECKPOINTS_DIR / "step_00000001"
    completed = subprocess.run([sys.executable, str(ENTRY), "--checkpoint", str(first), "--output",
                                str(tmp_path / "merged")], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    merged = OpenVLAPolicy.from_pretrained(tmp_path / "merged")
    adapter = OpenVLAPolicy.from_pretrained(first / POLICY_DIR)
    assert not (tmp_path / "merged" / "lora_adapter").exists() and (tmp_path / "merged" / "README.md").is_file()
    assert "step 1" in (tmp_path / "merged" / "README.md").read_text()
    backbone = load_config(rlds_root, tmp_path / "other").backbone
    batch = probe_batch(dataclasses.replace(backbone, pretrained=str(tmp_path / "merged")).build(), 224)
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "pixel_values")}
    expected = adapter.predict_action(**inputs, normalized_proprio=batch["proprio"])
    actual = merged.predict_action(**inputs, normalized_proprio=batch["proprio"])
    torch.testing.assert_close(actual.actions, expected.actions, atol=1e-5, rtol=1e-4)
    # The deployment API: the merged directory and the checkpoint it came from act alike on raw observations.
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in range(2)]
    state = rng.uniform(-1, 1, 8).astype(np.float32)
    merged_actions = Policy.from_pretrained(tmp_path / "merged").predict(frames, "open the top drawer", state)
    adapter_actions = Policy.from_pretrained(first).predict(frames, "open the top drawer", state)
    np.testing.assert_allclose(merged_actions, adapter_actions, atol=1e-5, rtol=1e-4)


def test_pi0_checkpoints_merge_and_bad_requests_are_refused(rlds_root, tmp_path):
    run_dir = _train(rlds_root, tmp_path / "runs", "pi0")
    output = merge_checkpoint(MergeConfig(checkpoint=run_dir, output=tmp_path / "merged"))
    backbone = load_config(rlds_root, tmp_path / "other", "pi0").backbone
    checkpoint_policy = run_dir / CHECKPOINTS_DIR / "step_00000002" / POLICY_DIR
    adapter = dataclasses.replace(backbone, pretrained=str(checkpoint_policy)).build()
    merged_adapter = dataclasses.replace(backbone, pretrained=str(output)).build()
    assert adapter.has_lora and not merged_adapter.has_lora
    batch = probe_batch(adapter, 224)
    expected, actual = probe_outputs(adapter, batch), probe_outputs(merged_adapter, batch)
    torch.testing.assert_close(actual["hidden_states"], expected["hidden_states"], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(actual["loss"], expected["loss"], atol=1e-5, rtol=1e-4)
    halved = merge_checkpoint(MergeConfig(checkpoint=run_dir, output=tmp_path / "bf16", dtype="bfloat16"))
    with safe_open(halved / "model.safetensors", "pt") as weights:
        assert {weights.get_slice(name).get_dtype() for name in weights.keys()} == {"BF16"}
    frames = [np.zeros((64, 64, 3), np.uint8)] * 2
    assert np.isfinite(Policy.from_pretrained(halved).predict(frames, "open the drawer", np.zeros(8))).all()
    with pytest.raises(ConfigError, match="exists"):
        merge_checkpoint(MergeConfig(checkpoint=run_dir, output=output))
    shutil.copytree(output, run_dir / "merged")  # a merged policy inside its run
    with pytest.raises(ConfigError, match="no LoRA adapter"):
        merge_checkpoint(MergeConfig(checkpoint=run_dir / "merged", output=tmp_path / "again"))
    (run_dir / "merged" / DEPLOY_CONFIG_NAME).unlink()  # a directory that is no policy of the run
    with pytest.raises(ConfigError, match="no LoRA adapter"):
        merge_checkpoint(MergeConfig(checkpoint=run_dir / "merged", output=tmp_path / "again"))
    with pytest.raises(MissingInputError, match="a run directory"):
        merge_checkpoint(MergeConfig(checkpoint=tmp_path / "runs", output=tmp_path / "again"))
