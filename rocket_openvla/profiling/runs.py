"""What a profile looks at: a run's config and saved steps, or a config at initialisation (no model code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rocket_openvla.deploy.deploy_config import read_run_config
from rocket_openvla.errors import MissingInputError
from rocket_openvla.profiling.config import ProfileConfig
from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, TRAINABLE_NAME, TRAINER_STATE_NAME
from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.run_dir import run_directory


@dataclass(frozen=True)
class SavedStep:
    """One checkpoint of a run: its step and directory."""

    step: int
    path: Path


def run_checkpoints(path: Path) -> tuple[Path, list[SavedStep]]:
    """`(run directory, checkpoints in step order)` of a run directory (every checkpoint) or of one checkpoint."""
    path = Path(path)
    if (path / TRAINABLE_NAME).is_file():
        directories, run_dir = [path], path.parent.parent
    else:
        directories, run_dir = sorted(p for p in (path / CHECKPOINTS_DIR).glob("step_*") if p.is_dir()), path
    steps = [SavedStep(int(json.loads((d / TRAINER_STATE_NAME).read_text())["step"]), d)
             for d in directories if (d / TRAINER_STATE_NAME).is_file()]
    if not steps:
        raise MissingInputError(f"checkpoints={path} is neither a checkpoint directory (with {TRAINABLE_NAME}) nor a "
                                f"run directory with finished checkpoints under {CHECKPOINTS_DIR}/")
    return run_dir, sorted(steps, key=lambda saved: saved.step)


@dataclass(frozen=True)
class Subject:
    """What a profile looks at: the model and data config, its run directory and the saved steps (none: the model
    as a new run initialises it)."""

    config: FinetuneConfig
    run_dir: Path
    saved: list[SavedStep]


def profiling_subject(config: ProfileConfig) -> Subject:
    """With `config.checkpoints`, the run's own config and checkpoints; else `config` itself at initialisation."""
    if config.checkpoints is None:
        return Subject(config, run_directory(config), [])
    run_dir, saved = run_checkpoints(config.checkpoints)
    return Subject(read_run_config(run_dir), run_dir, saved)
