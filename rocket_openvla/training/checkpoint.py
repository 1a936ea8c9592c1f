"""Atomic, exactly resumable training checkpoints.

    <run_dir>/checkpoints/
        step_00001000/
            trainable.safetensors      every trainable parameter: LoRA, action head, proprio projector, ROCKET projector
            optimizer.{json,safetensors}  scheduler.{json,safetensors}
            trainer_state.json         step, world size, skipped-step counter
            config.yaml                the run's config
            rank_000/rng.{json,safetensors}  rank_000/data/   per-rank RNG states and data-iterator position
            policy/                    the deployable policy (LoRA adapter, heads, dataset statistics): backbone layout
        latest                         name of the newest complete checkpoint

A checkpoint is written into a hidden temporary directory and renamed when complete, and `latest` is replaced
atomically afterwards, so a crash at any point leaves the previous checkpoint intact and pointed to.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from rocket_openvla.errors import ConfigError
from rocket_openvla.files import save_safetensors, write_text
from rocket_openvla.state_dicts import state_dict_problems
from rocket_openvla.training.distributed import DistributedContext, barrier
from rocket_openvla.training.rng import restore_rng_state, rng_state
from rocket_openvla.training.state_io import load_state_tree, save_state_tree

CHECKPOINTS_DIR = "checkpoints"
LATEST_NAME = "latest"
TRAINABLE_NAME = "trainable.safetensors"
TRAINER_STATE_NAME = "trainer_state.json"
CONFIG_NAME = "config.yaml"  # the run's config, copied into every checkpoint
POLICY_DIR = "policy"


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    nonfinite_steps: int = 0  # skipped steps with a non-finite loss, in total
    world_size: int = 1


@dataclass
class Resumable:
    """Everything a checkpoint saves and restores."""

    module: nn.Module  # the unwrapped TrainStep
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    dataset: Any  # has save_state(dir) / restore_state(dir)
    export_policy: Callable[[Path], None]  # writes the deployable policy into a directory


def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def trainable_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().contiguous() for name, p in module.named_parameters() if p.requires_grad}


def latest_checkpoint(run_dir: Path) -> Path | None:
    pointer = run_dir / CHECKPOINTS_DIR / LATEST_NAME
    if not pointer.is_file():
        return None
    path = run_dir / CHECKPOINTS_DIR / pointer.read_text().strip()
    return path if path.is_dir() else None


class CheckpointManager:
    def __init__(self, run_dir: Path, context: DistributedContext, keep_last: int | None = None) -> None:
        self.run_dir = run_dir
        self.root = run_dir / CHECKPOINTS_DIR
        self.context = context
        self.keep_last = keep_last

    def save(self, state: TrainerState, parts: Resumable) -> Path:
        """Write checkpoint `state.step` (collective: every rank must call it)."""
        final = self.root / checkpoint_name(state.step)
        temporary = self.root / f".{final.name}.tmp"
        if self.context.is_main:
            shutil.rmtree(temporary, ignore_errors=True)
            temporary.mkdir(parents=True)
        barrier()
        rank_dir = temporary / f"rank_{self.context.rank:03d}"
        rank_dir.mkdir()
        save_state_tree(rng_state(), rank_dir, "rng")
        parts.dataset.save_state(rank_dir / "data")
        barrier()
        if self.context.is_main:
            save_safetensors(trainable_state_dict(parts.module), temporary / TRAINABLE_NAME)
            save_state_tree(parts.optimizer.state_dict(), temporary, "optimizer")
            save_state_tree(parts.scheduler.state_dict(), temporary, "scheduler")
            write_text(temporary / TRAINER_STATE_NAME, json.dumps(state.__dict__, indent=2))
            shutil.copyfile(self.run_dir / CONFIG_NAME, temporary / CONFIG_NAME)
            parts.export_policy(temporary / POLICY_DIR)
            if final.exists():
                shutil.rmtree(final)
            os.replace(temporary, final)
            write_text(self.root / LATEST_NAME, final.name)
            self._prune()
        barrier()
        return final

    def load(self, path: Path, parts: Resumable) -> TrainerState:
        """Restore everything `save` wrote; returns the trainer state."""
        state = TrainerState(**json.loads((path / TRAINER_STATE_NAME).read_text()))
        if state.world_size != self.context.world_size:
            raise ConfigError(
                f"checkpoint {path} was written by {state.world_size} processes but this run has "
                f"{self.context.world_size}; resume with the same number of processes (the data shards and "
                "iterator positions are per rank)"
            )
        load_trainable(parts.module, path)
        parts.optimizer.load_state_dict(load_state_tree(path, "optimizer"))
        parts.scheduler.load_state_dict(load_state_tree(path, "scheduler"))
        rank_dir = path / f"rank_{self.context.rank:03d}"
        restore_rng_state(load_state_tree(rank_dir, "rng"))
        parts.dataset.restore_state(rank_dir / "data")
        return state

    def _prune(self) -> None:
        if self.keep_last is None:
            return
        complete = sorted(p for p in self.root.glob("step_*") if p.is_dir())
        for old in complete[: -self.keep_last]:
            shutil.rmtree(old)


def load_trainable(module: torch.nn.Module, checkpoint: Path) -> None:
    """Copy a checkpoint's `trainable.safetensors` into `module`'s trainable parameters (the run's `TrainStep`: LoRA,
    heads, projector), refusing any missing, extra or mis-shaped tensor."""
    saved = load_file(str(checkpoint / TRAINABLE_NAME), device=str(next(module.parameters()).device))
    trainable = {name: p for name, p in module.named_parameters() if p.requires_grad}
    problems = state_dict_problems(trainable, saved)
    if problems:
        raise ConfigError(f"checkpoint {checkpoint} does not match this model: {'; '.join(problems)}; use the config "
                          "the run was started with")
    with torch.no_grad():
        for name, parameter in trainable.items():
            parameter.copy_(saved[name])
