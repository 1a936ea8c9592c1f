"""Every transformers VLM family through the real entry point: `vla-scripts/finetune_rocket.py --backbone.type
<family>` trains 2 steps with ROCKET on the generated dataset and writes a checkpoint with a deployable policy."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rocket_openvla.training.checkpoint import POLICY_DIR, latest_checkpoint
from tests.backbones.vlm.helpers import FAMILIES

from .conftest import tiny_config_dict, write_config

ENTRY = Path(__file__).resolve().parents[2] / "vla-scripts" / "finetune_rocket.py"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_two_step_finetune_through_the_entry_point(rlds_root, tmp_path, family):
    runs = tmp_path / "runs"
    config = tiny_config_dict(rlds_root, runs, "openvla", rocket={"student_token_shift": 0},
                              run={"max_steps": 2, "save_freq": 2})
    config["backbone"] = {"type": family, "policy": FAMILIES[family]}
    path = write_config(tmp_path / "config.yaml", config)
    completed = subprocess.run(
        [sys.executable, str(ENTRY), "--config_path", str(path)], capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    checkpoint = latest_checkpoint(runs / "test")
    assert checkpoint.name == "step_00000002"
    policy = checkpoint / POLICY_DIR
    assert (policy / "lora_adapter" / "adapter_model.safetensors").is_file()
    assert (policy / "policy_heads.safetensors").is_file()
    assert yaml.safe_load((runs / "test" / "config.yaml").read_text())["backbone"]["type"] == family
