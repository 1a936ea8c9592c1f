"""What every benchmark writes: one JSON report with its settings, raw results and the ratios it exists to measure.

    {"bench": "step", "seed": 0, "environment": {...}, "settings": {...}, "results": {...},
     "ratios": [{"name": "rocket on the fly / baseline", "value": 2.31, "meaning": "step time, x"}]}

`bench/run_all.py` runs each benchmark with `--json` and prints every report's ratios in one table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

SEED = 0  # every benchmark draws its random weights and inputs from this seed
PACKAGES = ("torch", "transformers", "peft", "timm", "tensorflow-cpu", "tensorflow", "numpy")


@dataclass(frozen=True)
class Ratio:
    name: str  # "rocket on the fly / baseline"
    value: float
    meaning: str  # what the number is: "step time, x" (higher = slower than the denominator) ...


def parse_args(parser: argparse.ArgumentParser, quick: dict[str, Any]) -> argparse.Namespace:
    """Parse the command line, adding `--quick` (the reduced setting `bench/run_all.py --quick` runs: `quick`
    replaces the defaults; flags given on the command line still win) and `--json PATH`."""
    parser.add_argument("--quick", action="store_true", help=f"reduced setting: {quick or 'the defaults'}")
    parser.add_argument("--json", type=Path, help="also write the report (bench/report.py's format) here")
    args = parser.parse_args()
    if args.quick and quick:
        parser.set_defaults(**quick)
        args = parser.parse_args()
    return args


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed flags as JSON values."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def environment() -> dict[str, Any]:
    """Machine, versions and commit, so a report says where its numbers come from."""
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": device,
        "cuda_device_count": torch.cuda.device_count() if torch.cuda.is_available() else 0,
        "python": platform.python_version(),
        "versions": versions,
        "commit": _commit(),
    }


def _commit() -> str | None:
    try:
        result = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() or None


def write_report(path: Path | None, bench: str, settings: dict[str, Any], results: dict[str, Any],
                 ratios: list[Ratio]) -> None:
    """Write the report to `path` (JSON); nothing when `path` is None."""
    report = {
        "bench": bench,
        "seed": SEED,
        "environment": environment(),
        "settings": settings,
        "results": results,
        "ratios": [{"name": r.name, "value": round(r.value, 4), "meaning": r.meaning} for r in ratios],
    }
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, default=str) + "\n")


def print_ratios(ratios: list[Ratio]) -> None:
    for ratio in ratios:
        print(f"  {ratio.name:58s} {ratio.value:9.3f}   {ratio.meaning}")
