"""Run every benchmark, each in its own process, and print all their ratios in one table.

Benchmarks (bench/<name>.py, each also runnable alone; see its docstring):
  objective  the ROCKET objective vs the release's per-pair loop with its `.item()` calls (time, host syncs)
  step       one training step, same model and batch: baseline vs ROCKET with the teacher on the fly vs cached
  teacher    the VGGT teacher's forward, all blocks vs early exit at the deepest requested block
  cache      the teacher cache: bytes per frame vs the release's layout, cached vs on-the-fly targets, precompute rate
  data       the RLDS input pipeline: samples/s, peak RSS vs the shuffle buffer, what a GPU step needs
  cka        peak memory of the streamed CKA profile vs the release's feature store
  server     the action server's latency and throughput vs calling the policy in-process

Writes `<out>/<name>.json` per benchmark and `<out>/all.json` (environment, every report, wall seconds); exits
non-zero if any benchmark failed (the others still run).

Usage:
    python bench/run_all.py --quick                 # <= 10 minutes on 2 CPU cores
    python bench/run_all.py --only step objective   # a subset, full settings
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from report import environment

BENCH_DIR = Path(__file__).resolve().parent
BENCHMARKS = ("objective", "step", "teacher", "cache", "data", "cka", "server")


def run_one(name: str, quick: bool, out: Path, timeout: float) -> dict:
    """Run bench/bench_<name>.py; its report, or `{"error": ...}`, with the wall seconds."""
    command = [sys.executable, str(BENCH_DIR / f"bench_{name}.py"), "--json", str(out / f"{name}.json")]
    command += ["--quick"] if quick else []
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    try:
        result = subprocess.run(command, timeout=timeout, stderr=subprocess.PIPE, text=True)
    except subprocess.TimeoutExpired:
        return {"bench": name, "error": f"timed out after {timeout:.0f} s", "wall_seconds": timeout}
    wall = round(time.perf_counter() - start, 1)
    if result.returncode != 0:
        return {"bench": name, "error": f"exit {result.returncode}: {result.stderr[-3000:]}", "wall_seconds": wall}
    report = json.loads((out / f"{name}.json").read_text())
    return {**report, "wall_seconds": wall}


def print_table(reports: list[dict]) -> None:
    print(f"\n{'bench':10s} {'ratio':58s} {'value':>10s}   meaning")
    for report in reports:
        if "error" in report:
            print(f"{report['bench']:10s} FAILED ({report['wall_seconds']} s): {report['error'].splitlines()[0]}")
            continue
        for ratio in report["ratios"]:
            print(f"{report['bench']:10s} {ratio['name']:58s} {ratio['value']:10.3f}   {ratio['meaning']}")
    total = sum(report["wall_seconds"] for report in reports)
    print("\nwall time: " + ", ".join(f"{r['bench']} {r['wall_seconds']:.0f} s" for r in reports) +
          f"; total {total / 60:.1f} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="each benchmark's reduced setting")
    parser.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run these benchmarks only")
    parser.add_argument("--out", type=Path, default=Path("bench/results"), help="directory of the JSON reports")
    parser.add_argument("--timeout", type=float, default=900, help="seconds one benchmark may take")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    reports = [run_one(name, args.quick, args.out, args.timeout) for name in args.only or BENCHMARKS]
    print_table(reports)
    summary = {"environment": environment(), "quick": args.quick, "reports": reports}
    (args.out / "all.json").write_text(json.dumps(summary, indent=1, default=str) + "\n")
    print(f"reports: {args.out}/")
    if any("error" in report for report in reports):
        sys.exit(1)


if __name__ == "__main__":
    main()
