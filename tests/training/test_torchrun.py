"""End to end: `torchrun --nproc-per-node 2` (gloo) on a generated RLDS dataset."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rocket_openvla.training.checkpoint import latest_checkpoint

from .conftest import tiny_config_dict, write_config

WORKER = Path(__file__).with_name("ddp_finetune_worker.py")


@pytest.mark.parametrize(("backbone", "trained", "action_metric"), [
    ("openvla", {"vla", "action_head", "proprio_projector", "objective"}, "action_l1"),
    ("pi0", {"model", "objective"}, "flow_mse"),
])
def test_two_process_finetune_keeps_ranks_in_sync(rlds_root, tmp_path, backbone, trained, action_metric):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "config.yaml", tiny_config_dict(rlds_root, runs, backbone, run={"max_steps": 4}))
    result = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(WORKER),
         str(result), "--config_path", str(config)],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    outcome = json.loads(result.read_text())
    assert outcome["max_abs_diff"] == 0.0
    assert trained <= set(outcome["groups"])

    run_dir = Path(outcome["run_dir"])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4]
    for record in records:
        assert all(math.isfinite(record[key]) for key in ("loss", action_metric, "align/loss"))
        assert record["samples_per_second"] > 0
    assert latest_checkpoint(run_dir).name == "step_00000004"
    for rank in (0, 1):
        assert (latest_checkpoint(run_dir) / f"rank_{rank:03d}" / "data" / "data_state.json").is_file()
