"""The benchmark entry points as CI runs them: the GPU check's CPU dry run, and run_all's aggregation.

`bash bench/gpu_check.sh --tiny` runs the real objective, training step and 2-process DDP code on tiny shapes; its
checks (no host sync in the objective, the release loop's K + 1 syncs, ranks bit-identical after DDP steps on
different data) are computed from what ran, and the script exits 1 when one fails.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_tiny_dry_run_passes_its_checks(tmp_path):
    result = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--tiny", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHON": sys.executable})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())

    assert set(report["checks"].values()) <= {"pass", "skipped"}
    assert report["checks"]["ddp: weights identical across ranks"] == "pass"  # no GPU here: 2 CPU processes, gloo
    objective = report["objective"]
    assert objective["host_syncs"] == {"release": 11, "masked": 0, "ours": 0}
    step = report["step"]
    assert set(step["rows"]) == {"baseline", "rocket cached", "rocket on the fly"}
    assert step["teacher_images_per_second"] > 0 and step["objective_host_syncs"]["count"] == 0
    ddp = report["ddp"]
    assert ddp["backend"] == "gloo" and ddp["ranks_saw_different_data"] and ddp["max_weight_change"] > 0
    assert all(group["max_abs_difference"] == 0 for group in ddp["differences"].values())


def test_run_all_collects_each_reports_ratios(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "run_all.py"), "--quick", "--only", "objective",
                             "--out", str(tmp_path)], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((tmp_path / "all.json").read_text())

    (report,) = summary["reports"]
    assert report["bench"] == "objective" and report["wall_seconds"] > 0
    ratios = {ratio["name"]: ratio["value"] for ratio in report["ratios"]}
    assert ratios["objective host syncs: ours"] == 0 and ratios["objective host syncs: release loop"] == 11
    assert ratios["objective: release loop / ours"] > 0
    assert "objective: release loop / ours" in result.stdout  # the table
    assert summary["environment"]["versions"]["torch"] == report["environment"]["versions"]["torch"]
