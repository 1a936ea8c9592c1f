"""End to end: `torchrun --nproc-per-node 2 vla-scripts/finetune_rocket.py --backbone.type lerobot` trains a tiny
lerobot pi0.5 with ROCKET on a generated LIBERO-format RLDS dataset, checkpoints, resumes, and its policy reloads."""

import pytest

from .helpers import SKIP_REASON, batch_of

pytest.importorskip("lerobot", reason=SKIP_REASON)

import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from rocket_openvla.training.checkpoint import (  # noqa: E402
    CHECKPOINTS_DIR,
    POLICY_DIR,
    TRAINABLE_NAME,
    TRAINER_STATE_NAME,
    latest_checkpoint,
)
from tests.training.conftest import tiny_config_dict, write_config  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[3] / "vla-scripts" / "finetune_rocket.py"
LEROBOT_BACKBONE_FIELDS = {"policy_type": "pi05", "chunk_size": 4, "empty_cameras": 1}
LEROBOT_BACKBONE = {"type": "lerobot", **LEROBOT_BACKBONE_FIELDS}


def torchrun(config_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(SCRIPT),
         "--config_path", str(config_path), *arguments],
        capture_output=True, text=True, timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_two_process_finetune_checkpoints_resumes_and_reloads(rlds_root, tmp_path):
    runs = tmp_path / "runs"
    config = tiny_config_dict(rlds_root, runs, run={"max_steps": 2, "save_freq": 1})
    config["backbone"] = LEROBOT_BACKBONE  # the tiny pi0.5: 4 VLM blocks, two cameras + an empty slot, 4 x 4 tokens
    config["rocket"] = {"coeff": 0.5, "student_layers": [1, -1], "teacher_layers": [0, -1]}
    config["data"].update(num_actions_chunk=4, image_size=56)
    config_path = write_config(tmp_path / "config.yaml", config)

    first = torchrun(config_path)
    assert first.returncode == 0, first.stderr[-4000:]
    run_dir = runs / "test"
    assert latest_checkpoint(run_dir).name == "step_00000002"
    assert (run_dir / "base_model" / "model.safetensors").is_file()  # the random tiny base, for the policy dirs

    second = torchrun(config_path, "--run.resume", "true", "--run.max_steps", "4")
    assert second.returncode == 0, second.stderr[-4000:]
    assert "resumed" in second.stderr and "at step 2" in second.stderr
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [record["step"] for record in records] == [1, 2, 3, 4]
    assert all(math.isfinite(record[key]) for record in records for key in ("loss", "flow_mse", "align/loss"))
    checkpoint = latest_checkpoint(run_dir)
    assert checkpoint.name == "step_00000004"
    assert json.loads((checkpoint / TRAINER_STATE_NAME).read_text())["step"] == 4
    assert sorted(p.name for p in (run_dir / CHECKPOINTS_DIR).iterdir() if p.name.startswith("step_")) == [
        f"step_0000000{step}" for step in (1, 2, 3, 4)]

    # the checkpoint's policy directory reloads: lerobot's config, our spec, the LoRA adapter over the saved base
    from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig

    policy_dir = checkpoint / POLICY_DIR
    assert {"config.json", "policy_config.json", "lora_adapter", "dataset_statistics.json"} <= {
        p.name for p in policy_dir.iterdir()}
    adapter = LeRobotBackboneConfig(**LEROBOT_BACKBONE_FIELDS).for_policy_dir(policy_dir).build()
    trained = load_file(str(checkpoint / TRAINABLE_NAME))
    reloaded = {f"policy.{name}": p for name, p in adapter.policy.named_parameters() if "lora_" in name}
    assert reloaded and all(torch.equal(p, trained[name]) for name, p in reloaded.items())
    assert set(adapter.policy.statistics) == {"synthetic_libero_no_noops"}



def test_a_merged_policy_directory_reloads_with_the_same_outputs(tmp_path):
    from rocket_openvla.integrations.lerobot.backbone_config import LeRobotBackboneConfig

    options = LeRobotBackboneConfig(**LEROBOT_BACKBONE_FIELDS)
    adapter = options.build()
    adapter.apply_lora(rank=4, alpha=8)
    with torch.no_grad():  # trained-looking adapters (peft starts them at zero)
        for name, parameter in adapter.policy.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.05)
    batch = batch_of(adapter)
    torch.manual_seed(0)
    expected = adapter.policy(batch).loss
    adapter.merge_lora()
    adapter.save_pretrained(tmp_path / "merged")
    reloaded = options.for_policy_dir(tmp_path / "merged").build()
    assert not reloaded.has_lora and reloaded.policy.spec.size == "tiny"
    torch.manual_seed(0)
    torch.testing.assert_close(reloaded.policy(batch).loss, expected)
