"""The run directory: where it is, the config it was started with, and what a new start or a resume may do there.

    <run_root_dir>/<run_id>/
        config.yaml               the FinetuneConfig the run was started with
        dataset_statistics.json   action/proprio statistics (needed to un-normalise predicted actions)
        checkpoints/              see training/checkpoint.py
        wandb/                    wandb files (offline runs: `wandb sync <run_dir>/wandb/offline-run-*`)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import draccus

from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, CONFIG_NAME, latest_checkpoint
from rocket_openvla.training.config import FinetuneConfig

STATISTICS_NAME = "dataset_statistics.json"
# Fields that may differ between a run and its resumption (they do not change what is being trained).
RESUMABLE_CHANGES = ("run.resume", "run.max_steps", "run.save_freq", "run.keep_last", "run.log_freq",
                     "run.overwrite", "wandb.mode", "wandb.project", "wandb.entity")


def run_directory(config: FinetuneConfig) -> Path:
    return config.run.run_root_dir / (config.run.run_id or default_run_id(config))


def default_run_id(config: FinetuneConfig) -> str:
    """`<backbone>+<dataset>+b<batch>+lr-<lr>+<objective>` (ROCKET runs add the coefficient and pair count)."""
    objective = f"{config.objective}-c{config.rocket.coeff:g}-k{config.rocket.num_pairs}" if config.rocket.enabled else "baseline"
    batch = config.run.batch_size * config.optim.grad_accumulation_steps
    return f"{config.backbone.type}+{config.data.dataset}+b{batch}+lr-{config.optim.lr:g}+{objective}"


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def config_differences(saved: Path, config: FinetuneConfig, ignore: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    """`{field: (saved value, current value)}` for fields of `config` that differ from the YAML at `saved`."""
    with saved.open() as handle:
        old = _flatten(draccus.encode(draccus.load(FinetuneConfig, handle)))
    new = _flatten(draccus.encode(config))
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if old.get(key) != new.get(key) and key not in ignore}


def check_run_directory(config: FinetuneConfig, run_dir: Path) -> None:
    """Check that a new start or a resume may use `run_dir` (read-only, so every rank can run it and fail alike).

    Raises:
        FileNotFoundError / ValueError: naming the directory and the fix.
    """
    config_path = run_dir / CONFIG_NAME
    if config.run.resume:
        if not config_path.is_file():
            raise FileNotFoundError(
                f"run.resume: {run_dir} is not a run directory (no {CONFIG_NAME}); check run.run_root_dir / "
                "run.run_id, or start a new run without --run.resume"
            )
        if latest_checkpoint(run_dir) is None:
            raise FileNotFoundError(f"run.resume: {run_dir} has no complete checkpoint to resume from")
        changed = config_differences(config_path, config, ignore=RESUMABLE_CHANGES)
        if changed:
            raise ValueError(f"run.resume: the config differs from the run's {config_path}: {_describe(changed)}; "
                             f"resume with the original settings (only {', '.join(RESUMABLE_CHANGES)} may change)")
    elif config_path.is_file() and not config.run.overwrite:
        changed = config_differences(config_path, config, ignore=("run.overwrite",))
        what = f"a different config ({_describe(changed)})" if changed else "a run with this config"
        raise ValueError(f"{run_dir} already holds {what}; pass --run.resume true to continue it, "
                         "--run.overwrite true to start over there, or choose another --run.run_id")


def record_config(config: FinetuneConfig, run_dir: Path) -> None:
    """Write `config.yaml` atomically (main process only); a new start with `run.overwrite` drops old checkpoints."""
    if config.run.overwrite and not config.run.resume:
        shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    temporary = run_dir / f".{CONFIG_NAME}.tmp"
    with temporary.open("w") as handle:
        draccus.dump(config, handle)
    os.replace(temporary, run_dir / CONFIG_NAME)


def _describe(changed: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(changed.items())[:6])
