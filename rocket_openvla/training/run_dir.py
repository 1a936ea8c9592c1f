"""The run directory: where it is, the config it was started with, and what a new start or a resume may do there.

    <run_root_dir>/<run_id>/
        config.yaml               the FinetuneConfig the run was started with
        dataset_statistics.json   action/proprio statistics (needed to un-normalise predicted actions)
        checkpoints/              see training/checkpoint.py
        metrics.jsonl             one line of metrics per log step
        wandb/                    wandb files (offline runs: `wandb sync <run_dir>/wandb/offline-run-*`)
        wandb_run_id              the wandb run id, continued by `--run.resume true`
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import draccus

from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.files import write_text
from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, CONFIG_NAME, latest_checkpoint
from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.tracking import METRICS_NAME

# Fields that may differ between a run and its resumption (they do not change what is being trained).
RESUMABLE_CHANGES = ("run.resume", "run.max_steps", "run.save_freq", "run.keep_last", "run.log_freq",
                     "run.overwrite", "wandb.mode", "wandb.project", "wandb.entity")


def run_directory(config: FinetuneConfig) -> Path:
    return config.run.run_root_dir / (config.run.run_id or default_run_id(config))


def default_run_id(config: FinetuneConfig) -> str:
    """`<backbone>+<dataset>+b<batch>+lr-<lr>+<alignment>`, the alignment being `baseline`, or `rocket` / `naive`
    (independent projectors) with the coefficient and the number of layer pairs."""
    rocket = config.rocket
    if rocket.enabled:
        alignment = f"{'rocket' if rocket.share_projector else 'naive'}-c{rocket.coeff:g}-k{rocket.num_pairs}"
    else:
        alignment = "baseline"
    batch = config.run.batch_size * config.optim.grad_accumulation_steps
    return f"{config.backbone.type}+{config.data.dataset}+b{batch}+lr-{config.optim.lr:g}+{alignment}"


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
            raise MissingInputError(
                f"run.resume: {run_dir} is not a run directory (no {CONFIG_NAME}); check run.run_root_dir / "
                "run.run_id, or start a new run without --run.resume"
            )
        if latest_checkpoint(run_dir) is None:
            raise MissingInputError(f"run.resume: {run_dir} has no complete checkpoint to resume from")
        changed = config_differences(config_path, config, ignore=RESUMABLE_CHANGES)
        if changed:
            raise ConfigError(f"run.resume: the config differs from the run's {config_path}: {_describe(changed)}; "
                             f"resume with the original settings (only {', '.join(RESUMABLE_CHANGES)} may change)")
    elif config_path.is_file() and not config.run.overwrite:
        changed = config_differences(config_path, config, ignore=("run.overwrite",))
        what = f"a different config ({_describe(changed)})" if changed else "a run with this config"
        raise ConfigError(f"{run_dir} already holds {what}; pass --run.resume true to continue it, "
                         "--run.overwrite true to start over there, or choose another --run.run_id")


def record_config(config: FinetuneConfig, run_dir: Path) -> None:
    """Write `config.yaml` atomically (main process only); a new start with `run.overwrite` drops the old run's
    checkpoints and metrics."""
    if config.run.overwrite and not config.run.resume:
        shutil.rmtree(run_dir / CHECKPOINTS_DIR, ignore_errors=True)
        (run_dir / METRICS_NAME).unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / CONFIG_NAME, draccus.dump(config))


def _describe(changed: dict[str, tuple[Any, Any]]) -> str:
    return "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in list(changed.items())[:6])
