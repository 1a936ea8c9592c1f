import json
import os
import subprocess
import sys
from pathlib import Path


def test_projector_stays_identical_across_ranks_under_ddp(tmp_path):
    result = tmp_path / "result.json"
    worker = Path(__file__).with_name("ddp_worker.py")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
         str(worker), str(result)],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    outcome = json.loads(result.read_text())
    assert outcome["loss_diff_across_ranks"] > 1e-3  # the ranks really saw different data
    assert outcome["param_change"] > 1e-3  # the optimizer moved the projector
    assert outcome["max_param_diff_across_ranks"] == 0.0
