"""The GPU check: what ROCKET costs at real shapes, in one run on one GPU machine (random weights, nothing downloaded).

  objective  the ROCKET objective vs the release's per-pair loop at OpenVLA-7B's alignment shapes (10 pairs, 4096 ->
             2048, 2 cameras x 256 tokens, batch 8, bf16 student states): time and host syncs (ours must be 0)
  step       one training step of an OpenVLA-7B-shaped student (bf16, LoRA r32) with a VGGT-1B-shaped teacher at
             518 px, batch 8: baseline / ROCKET on the fly / ROCKET cached; peak memory, teacher images/s, host syncs
  ddp        2 processes (nccl) train the tiny OpenVLA with ROCKET on different batches (bench/ddp_check.py):
             projector, LoRA and head weights must stay bit-identical (needs 2 GPUs; skipped on one)
--tiny runs the same code on tiny shapes, on CPU when there is no GPU (gloo for ddp): CI's dry run.

Writes `<out>/gpu_check.json` (environment, every measurement, `checks`: pass / fail / skipped); exits 1 if a check
failed. On one H100/H200 it should take about 5 minutes (an estimate: it has not run on a GPU yet). Run it through
`bash bench/gpu_check.sh`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import bench_objective
import bench_step
import torch
from report import environment

BENCH_DIR = Path(__file__).resolve().parent
# the alignment inputs of the paper's OpenVLA-7B run: 10 pairs, Llama-2-7B states, VGGT-1B targets, 2 x 256 tokens
OBJECTIVE_SHAPES = {"7b": {"pairs": 10, "student_dim": 4096, "teacher_dim": 2048, "batch": 8, "tokens": 512},
                    "tiny": {"pairs": 10, "student_dim": 256, "teacher_dim": 128, "batch": 2, "tokens": 128}}


def objective_section(size: str, device: torch.device, iters: int) -> dict[str, Any]:
    results, ratios = bench_objective.run(**OBJECTIVE_SHAPES[size], iters=iters, device=device)
    return {"shapes": OBJECTIVE_SHAPES[size], **results, "ratios": [vars(r) for r in ratios]}


def step_section(size: str, device: torch.device, iters: int) -> dict[str, Any]:
    batch = 8 if size == "7b" else 2
    results, ratios = bench_step.run(size, batch, iters, device)
    return {"batch": batch, **results, "ratios": [vars(r) for r in ratios]}


def ddp_section(out: Path, timeout: float) -> dict[str, Any]:
    """bench/ddp_check.py on 2 processes: on 2 GPUs, or on CPU (gloo) when this machine has none."""
    gpus = torch.cuda.device_count()
    if gpus == 1:
        return {"skipped": "one GPU: the NCCL check needs 2"}
    path = out / "ddp_check.json"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(BENCH_DIR / "ddp_check.py"), "--json", str(path)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    if result.returncode != 0:
        return {"error": f"exit {result.returncode}: {result.stderr[-3000:]}"}
    return json.loads(path.read_text())


def checks(sections: dict[str, Any]) -> dict[str, str]:
    """Each check: "pass", "fail" or "skipped"."""
    objective, step, ddp = sections["objective"], sections["step"], sections["ddp"]
    step_syncs = {name: row["host_syncs"]["count"] for name, row in step["rows"].items()}
    verdict = {
        "objective: no host sync": objective["host_syncs"]["ours"] == 0,
        "objective: release loop syncs K + 1 times": objective["host_syncs"]["release"] == objective["shapes"]["pairs"]
        + 1,
        "step: ROCKET adds no host sync": step["objective_host_syncs"]["count"] == 0
        and step_syncs["rocket on the fly"] == step_syncs["baseline"] == step_syncs["rocket cached"],
    }
    result = {name: "pass" if ok else "fail" for name, ok in verdict.items()}
    if "skipped" in ddp:
        result["ddp: weights identical across ranks"] = "skipped"
    else:
        ok = ("error" not in ddp and ddp["identical"] and ddp["ranks_saw_different_data"]
              and ddp["max_weight_change"] > 0)
        result["ddp: weights identical across ranks"] = "pass" if ok else "fail"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (CPU dry run)")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "bench/results")),
                        help="directory of gpu_check.json (default: $OUT, else bench/results)")
    parser.add_argument("--iters", type=int, default=5, help="timed iterations per row")
    args = parser.parse_args()
    size = "tiny" if args.tiny else "7b"
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type != "cuda" and not args.tiny:
        raise SystemExit("no CUDA device: the real check needs a GPU; pass --tiny for the CPU dry run")
    args.out.mkdir(parents=True, exist_ok=True)
    iters = 2 if args.tiny else args.iters
    sections: dict[str, Any] = {"environment": environment(), "size": size, "device": str(device)}
    clock = {}
    for name, run in [("objective", lambda: objective_section(size, device, iters)),
                      ("step", lambda: step_section(size, device, iters)),
                      ("ddp", lambda: ddp_section(args.out, timeout=300))]:
        print(f"=== {name}", flush=True)
        start = time.perf_counter()
        sections[name] = run()
        clock[name] = round(time.perf_counter() - start, 1)
        print(json.dumps({k: v for k, v in sections[name].items() if k != "ratios"}, indent=1, default=str)[:3000],
              flush=True)
    sections["wall_seconds"] = clock
    sections["checks"] = checks(sections)
    path = args.out / "gpu_check.json"
    path.write_text(json.dumps(sections, indent=1, default=str) + "\n")
    print("\n".join(f"  {status:7s} {name}" for name, status in sections["checks"].items()))
    print(f"wrote {path}")
    if "fail" in sections["checks"].values():
        sys.exit(1)


if __name__ == "__main__":
    main()
