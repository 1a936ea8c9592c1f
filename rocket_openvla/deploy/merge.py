"""Merge the LoRA adapter of any checkpoint of any run into a self-contained policy directory.

    python vla-scripts/merge_lora.py --checkpoint runs/quickstart --output runs/quickstart/merged_latest
    python vla-scripts/merge_lora.py --checkpoint runs/x/checkpoints/step_00005000 --base checkpoints/openvla-7b \
        --output deploy/x_5000

`--checkpoint` is a run directory (its latest checkpoint), a checkpoint directory, or a policy directory inside a
run. The run's `config.yaml` says which backbone it is and which base it started from (`--base` overrides it; a run
from random weights keeps them in `<run_dir>/base_model/`). The output holds the full weights in the backbone's own
layout, its heads, the dataset statistics, the processor files, `policy_config.json`, `deploy_config.json` (how
`rocket_openvla.deploy.Policy` rebuilds it and prepares camera frames) and a model card (README.md);
the ROCKET projector trains only and is not part of a policy. Before the output is written, the merged policy is run
on a probe batch and must compute what the adapter policy computes (final hidden states and action loss within
`PROBE_TOLERANCE` relative), else nothing is written.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rocket_openvla.backbones.base import BackboneAdapter, eval_mode
from rocket_openvla.backbones.registry import WEIGHT_DTYPES
from rocket_openvla.capture import ResidualCapture
from rocket_openvla.deploy.deploy_config import (
    DEPLOY_CONFIG_NAME,
    DeployConfig,
    read_run_config,
    resolve_policy_dir,
)
from rocket_openvla.errors import ConfigError, check_choice
from rocket_openvla.files import write_text
from rocket_openvla.teachers.registry import TeacherConfig
from rocket_openvla.training.config import FinetuneConfig

logger = logging.getLogger(__name__)
PROBE_TOLERANCE = 1e-4  # relative to the largest magnitude; merging reorders float32 sums


@dataclass
class MergeConfig:
    """Merge a run's LoRA adapter into its base weights."""

    # A run directory (its latest checkpoint), a checkpoint directory (runs/x/checkpoints/step_N) or a policy
    # directory inside a run.
    checkpoint: Path = Path("runs/quickstart")
    # Where the merged policy is written (must not exist unless overwrite).
    output: Path = Path("merged")
    # The base model the run started from; null: the one its config and adapter record.
    base: Path | None = None
    # Weight dtype of the output: "bfloat16" (half the size; what OpenVLA-OFT evaluates), "float32", "float16", or
    # null (as the run holds them). The check against the adapter runs before the cast, in the run's own dtype.
    dtype: str | None = None
    # Replace an existing output directory.
    overwrite: bool = False

    def __post_init__(self) -> None:
        check_choice("dtype", self.dtype, (*WEIGHT_DTYPES, None), " (null: as the run holds them)")


def merge_checkpoint(config: MergeConfig) -> Path:
    """Write the merged policy of `config.checkpoint` to `config.output` (module docstring); returns the output."""
    output = Path(config.output)
    if output.exists() and not config.overwrite:
        raise ConfigError(f"output={output} exists; choose another directory or pass --overwrite true")
    if (Path(config.checkpoint) / DEPLOY_CONFIG_NAME).is_file():
        raise ConfigError(
            f"{config.checkpoint} is a merged policy (it has {DEPLOY_CONFIG_NAME} and no LoRA adapter); it is "
            "deployable as it is"
        )
    policy_dir, run_dir = resolve_policy_dir(Path(config.checkpoint))
    run_config = read_run_config(run_dir)
    adapter = run_config.backbone.for_policy_dir(policy_dir, config.base).build()
    if not adapter.has_lora:
        raise ConfigError(f"{policy_dir} holds no LoRA adapter (already merged?); it is deployable as it is")
    batch = probe_batch(adapter, run_config.data.image_size)
    before = probe_outputs(adapter, batch)
    adapter.merge_lora()
    check_probe_outputs(before, probe_outputs(adapter, batch))
    if config.dtype is not None:
        adapter.set_dtype(getattr(torch, config.dtype))
    staging = output.with_name(f".{output.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    adapter.save_pretrained(staging)
    DeployConfig.from_finetune_config(run_config).save(staging)
    write_text(staging / "README.md", model_card(run_config, run_dir, policy_dir))
    if output.exists():
        shutil.rmtree(output)
    staging.rename(output)
    logger.info("merged %s into %s", policy_dir, output)
    return output


def probe_batch(adapter: BackboneAdapter, image_size: int) -> dict[str, Any]:
    """Two collated samples of fixed random images, an instruction, zero state and actions."""
    rng = np.random.default_rng(0)
    statistics = adapter.policy.statistics
    dataset_name = next(iter(statistics)) if statistics else "probe"
    samples = [{
        "images": rng.integers(0, 256, (adapter.num_images, image_size, image_size, 3), dtype=np.uint8),
        "instruction": instruction,
        "actions": np.zeros((adapter.action_chunk, 7), np.float32),
        "proprio": np.zeros(8, np.float32),
        "dataset_name": dataset_name,
    } for instruction in ("pick up the black bowl", "open the top drawer")]
    processor = adapter.processor
    return processor.collator()([processor(sample) for sample in samples])


@torch.no_grad()
def probe_outputs(adapter: BackboneAdapter, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The final hidden states `[B, S, D]` and the action loss of one eval-mode forward (fixed RNG)."""
    final = adapter.num_hidden_layers
    with eval_mode(adapter.policy), ResidualCapture(adapter.capture_points(), [final]) as capture:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            output = adapter.policy(batch)
        states = capture.collect()[final]
    return {"hidden_states": states.float(), "loss": output.loss.float()}


def check_probe_outputs(adapter_outputs: dict[str, torch.Tensor], merged_outputs: dict[str, torch.Tensor]) -> None:
    for name, expected in adapter_outputs.items():
        error = (merged_outputs[name] - expected).abs().max() / expected.abs().max().clamp_min(1e-12)
        if not error <= PROBE_TOLERANCE:
            raise RuntimeError(
                f"the merged policy's {name} differ from the adapter policy's by {float(error):.2e} (relative), "
                f"more than {PROBE_TOLERANCE}; nothing was written"
            )


def model_card(config: FinetuneConfig, run_dir: Path, policy_dir: Path) -> str:
    state_file = policy_dir.parent / "trainer_state.json"
    step = json.loads(state_file.read_text()).get("step") if state_file.is_file() else "?"
    backbone, rocket = config.backbone, config.rocket
    base = getattr(backbone, "pretrained", None) or "random weights (the run's base_model/)"
    objective = (f"ROCKET, coeff {rocket.coeff}, student layers {rocket.student_layers}, teacher layers "
                 f"{rocket.teacher_layers}, shared projector {rocket.share_projector}, teacher "
                 f"`{TeacherConfig.get_choice_name(type(config.teacher))}`"
                 if rocket.enabled else "action loss only (baseline)")
    return (f"# {run_dir.name}, step {step}\n\n"
            f"- backbone: `{backbone.type}`, base: `{base}`; LoRA rank {config.lora.rank} merged into the weights\n"
            f"- data: `{config.data.dataset}` (image size {config.data.image_size}, augmentation "
            f"{config.data.image_aug})\n"
            f"- objective: {objective}\n"
            f"- from: `{policy_dir}`\n")

