"""Exact resume through the real entry point: run N steps; run again, SIGKILL it after the N/2 checkpoint,
resume to N; the losses of steps N/2+1..N and the final parameters equal the uninterrupted run's (CPU, fp32).
The same for pi0 in one process."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, LATEST_NAME, TRAINABLE_NAME
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.loop import Trainer

from .conftest import load_config, tiny_config_dict, write_config

SINGLE = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))

ROOT = Path(__file__).resolve().parents[2]
ENTRY = ROOT / "vla-scripts" / "finetune_rocket.py"
STEPS = 6


def command(config: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(ENTRY), "--config_path", str(config), *overrides]


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled", "TF_CPP_MIN_LOG_LEVEL": "3"}


def losses(run_dir: Path) -> dict[int, float]:
    by_step = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        by_step[record["step"]] = record["loss"]  # a resumed run re-logs steps the killed one reached
    return by_step


def test_sigkill_and_resume_reproduce_the_uninterrupted_run(rlds_root, tmp_path):
    runs = tmp_path / "runs"
    config = write_config(tmp_path / "config.yaml", tiny_config_dict(
        rlds_root, runs, "openvla", run={"max_steps": STEPS, "save_freq": STEPS // 2, "log_freq": 1}))

    subprocess.run(command(config, "--run.run_id", "straight"), check=True, env=environment(), timeout=600,
                   capture_output=True)

    pointer = runs / "killed" / CHECKPOINTS_DIR / LATEST_NAME
    process = subprocess.Popen(command(config, "--run.run_id", "killed", "--run.max_steps", "1000"),
                               env=environment(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not pointer.is_file():
        assert process.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert pointer.read_text() == f"step_{STEPS // 2:08d}", "killed later than the first checkpoint"

    resumed = subprocess.run(command(config, "--run.run_id", "killed", "--run.resume", "true"), env=environment(),
                             timeout=600, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]

    straight, killed = losses(runs / "straight"), losses(runs / "killed")
    for step in range(STEPS // 2 + 1, STEPS + 1):
        assert killed[step] == straight[step], (step, killed[step], straight[step])
    final = f"step_{STEPS:08d}"
    expected = load_file(str(runs / "straight" / CHECKPOINTS_DIR / final / TRAINABLE_NAME))
    actual = load_file(str(runs / "killed" / CHECKPOINTS_DIR / final / TRAINABLE_NAME))
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        assert torch.equal(actual[name], value), name


def test_pi0_resume_reproduces_the_uninterrupted_run(rlds_root, tmp_path):
    # In one process (the SIGKILL path is the test above): pi0 draws diffusion noise and times every step, so the
    # restored RNG states must continue the uninterrupted stream exactly.
    runs = tmp_path / "runs"
    run = {"max_steps": STEPS, "save_freq": STEPS // 2, "log_freq": 1}
    Trainer(load_config(rlds_root, runs, "pi0", run={**run, "run_id": "straight"}), SINGLE).train()
    Trainer(load_config(rlds_root, runs, "pi0", run={**run, "run_id": "resumed", "max_steps": STEPS // 2}),
            SINGLE).train()
    Trainer(load_config(rlds_root, runs, "pi0", run={**run, "run_id": "resumed", "resume": True}), SINGLE).train()
    straight, resumed = losses(runs / "straight"), losses(runs / "resumed")
    assert [resumed[step] for step in range(STEPS // 2 + 1, STEPS + 1)] == \
        [straight[step] for step in range(STEPS // 2 + 1, STEPS + 1)]
    final = f"step_{STEPS:08d}"
    expected = load_file(str(runs / "straight" / CHECKPOINTS_DIR / final / TRAINABLE_NAME))
    actual = load_file(str(runs / "resumed" / CHECKPOINTS_DIR / final / TRAINABLE_NAME))
    assert expected.keys() == actual.keys() and all(torch.equal(actual[k], v) for k, v in expected.items())
