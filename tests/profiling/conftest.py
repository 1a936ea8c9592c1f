"""The generated dataset, a tiny ROCKET set-up opened once (backbone + LoRA, data), and small runs saved from it."""

import dataclasses
import json
from pathlib import Path

import draccus
import pytest
import torch

from rocket_openvla.files import save_safetensors, write_text
from rocket_openvla.profiling.config import ProfileConfig
from rocket_openvla.profiling.session import Session
from rocket_openvla.training.checkpoint import (
    CHECKPOINTS_DIR,
    TRAINABLE_NAME,
    TRAINER_STATE_NAME,
    TrainerState,
    checkpoint_name,
    trainable_state_dict,
)
from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.run_dir import record_config
from tests.training.conftest import tiny_config_dict, write_config

SINGLE = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))


def profile_config(data_root: Path, run_root: Path, **sections) -> ProfileConfig:
    """The training tests' tiny openvla set-up (2-block Llama, 2-block random VGGT, pairs 1-0 and 2-1) with one sample
    per batch, as a `ProfileConfig` parsed like the entry point parses it."""
    defaults = {"data": {"image_aug": False}, "run": {"batch_size": 1}}
    merged = {name: {**defaults.get(name, {}), **sections.get(name, {})} for name in {*defaults, *sections}}
    values = tiny_config_dict(data_root, run_root, "openvla", **merged)
    path = write_config(run_root.parent / f"{run_root.name}-profile.yaml", values)
    return draccus.parse(ProfileConfig, config_path=str(path), args=[])


@pytest.fixture(scope="session")
def tiny_session(rlds_root, tmp_path_factory) -> Session:  # noqa: F811
    """The tiny set-up's adapter (LoRA applied) and data, as the profiling tools open them."""
    config = profile_config(rlds_root, tmp_path_factory.mktemp("profiling") / "runs")
    return Session.open(config, SINGLE, lora=True)


def save_run(session: Session, run_dir: Path, layout: dict, steps: tuple[int, ...] = (1, 2)) -> Path:
    """A run directory as the finetune loop leaves it (config.yaml; per checkpoint trainable.safetensors and
    trainer_state.json, written with the loop's own functions): the session's model with a ROCKET projector of
    `layout` (rocket section fields), the projector moved by a small random step before each checkpoint."""
    values = {f.name: getattr(session.config, f.name) for f in dataclasses.fields(FinetuneConfig)}
    config = FinetuneConfig(**{**values, "rocket": dataclasses.replace(session.config.rocket, **layout)})
    run_dir.mkdir(parents=True)
    record_config(config, run_dir)
    generator = torch.Generator().manual_seed(0)
    with session.train_step(config.rocket, session.teacher([0]).feature_dim) as step, torch.no_grad():
        for number in steps:
            for parameter in step.objective.parameters():
                parameter.add_(0.05 * torch.randn(parameter.shape, generator=generator))
            directory = run_dir / CHECKPOINTS_DIR / checkpoint_name(number)
            directory.mkdir(parents=True)
            save_safetensors(trainable_state_dict(step), directory / TRAINABLE_NAME)
            write_text(directory / TRAINER_STATE_NAME, json.dumps(TrainerState(step=number).__dict__))
    return run_dir


@pytest.fixture(scope="session")
def rocket_run(tiny_session, tmp_path_factory) -> Path:
    """A ROCKET (shared + Matryoshka) run whose projector moved between its checkpoints 3 and 7."""
    return save_run(tiny_session, tmp_path_factory.mktemp("rocket") / "run", {}, steps=(3, 7))
