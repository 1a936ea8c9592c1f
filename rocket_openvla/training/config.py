"""`FinetuneConfig`: the whole finetune job as one draccus config (YAML via `--config_path`, any field on the CLI).

    python vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml --run.max_steps 50
    torchrun --nproc-per-node 4 vla-scripts/finetune_rocket.py --config_path configs/paper/openvla_libero_rocket.yaml

List fields take `[2,4]` on the command line (quote them for the shell: `--rocket.student_layers '[2,4]'`).
The ROCKET ablations are presets of the `rocket` section (see `configs/paper/`): `share_projector: false` is the
naive multi-layer ablation, one pair with `share_projector: false` is Spatial Forcing, `coeff: 0` the baseline.
Parsing and validating a config imports no model code (`torch` only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rocket_openvla.align import RocketConfig
from rocket_openvla.backbones import BackboneConfig, OpenVLABackboneConfig
from rocket_openvla.data.config import DataConfig
from rocket_openvla.errors import ConfigError
from rocket_openvla.teachers.cache.config import TeacherCacheConfig
from rocket_openvla.teachers.registry import TeacherConfig, VGGTCheckpointConfig
from rocket_openvla.training.optim import OptimConfig

WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class LoraSettings:
    """LoRA as OFT / ROCKET: rank 32, alpha min(rank, 16), no dropout, every linear layer, gaussian init."""

    # Rank of the LoRA adapters.
    rank: int = 32
    # LoRA alpha (scale alpha / rank); null: min(rank, 16), as OFT.
    alpha: float | None = None
    # Dropout on the LoRA input.
    dropout: float = 0.0
    # Modules that get adapters: "all-linear" (every linear layer of LLM, towers and projector, as OFT) or a peft
    # target-module pattern.
    target_modules: str = "all-linear"
    # peft's init_lora_weights: "gaussian" (OFT), "default" (Kaiming-uniform A), "pissa", "olora", ...
    init: str = "gaussian"
    # At the end, fold the adapter into the base weights and write the deployable policy to <run_dir>/merged.
    merge_at_end: bool = False

    @property
    def effective_alpha(self) -> float:
        return float(min(self.rank, 16)) if self.alpha is None else self.alpha

    def validate(self) -> None:
        if self.rank < 1:
            raise ConfigError(f"lora.rank={self.rank}; use a rank of 1 or more (OFT: 32)")
        if self.alpha is not None and self.alpha <= 0:
            raise ConfigError(f"lora.alpha={self.alpha}; use a positive alpha or null (= min(rank, 16))")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora.dropout={self.dropout}; use a probability in [0, 1)")


@dataclass
class RunSettings:
    """Length, batch, checkpointing and logging of the run."""

    # Optimizer steps to train for (the release: 50,005).
    max_steps: int = 50_000
    # Samples per process per micro-batch; the global batch is batch_size x processes x grad accumulation.
    batch_size: int = 8
    # When set, must equal batch_size x processes x optim.grad_accumulation_steps (a guard for presets);
    # null: unchecked.
    global_batch_size: int | None = None
    # Save a checkpoint every this many steps (and at the end).
    save_freq: int = 5_000
    # Keep only the newest N checkpoints; null keeps all.
    keep_last: int | None = None
    # Log metrics (reduced over steps and processes) every this many steps.
    log_freq: int = 10
    # Seed of model initialisation and per-process randomness (the data has its own, data.seed).
    seed: int = 42
    # Folder that holds the run directories.
    run_root_dir: Path = Path("runs")
    # Run directory name under run_root_dir; null derives one from backbone, data, batch, lr and alignment.
    run_id: str | None = None
    # Continue the run in run_root_dir/run_id from its latest checkpoint (and its wandb run).
    resume: bool = False
    # Allow a new run in a directory that holds a run (its checkpoints are deleted).
    overwrite: bool = False
    # Abort after this many consecutive optimizer steps with a non-finite loss (each is skipped).
    max_nonfinite_steps: int = 5

    def validate(self) -> None:
        for name in ("max_steps", "batch_size", "save_freq", "log_freq", "max_nonfinite_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"run.{name}={getattr(self, name)}; use a positive value")
        for name in ("keep_last", "global_batch_size"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"run.{name}={value}; use a positive value or null")
        if self.resume and self.overwrite:
            raise ConfigError("run.resume and run.overwrite are both true; resume a run or start it over, not both")


@dataclass
class WandbSettings:
    """Weights & Biases logging (metrics also go to <run_dir>/metrics.jsonl)."""

    # wandb project.
    project: str = "rocket_openvla"
    # wandb entity (team or user); null: your default entity.
    entity: str | None = None
    # "online", "offline" (sync later with `wandb sync`) or "disabled"; the WANDB_MODE variable wins.
    mode: str = "offline"

    def validate(self) -> None:
        if self.mode not in WANDB_MODES:
            raise ConfigError(f"wandb.mode={self.mode!r}; choose one of {WANDB_MODES}")


@dataclass
class FinetuneConfig:
    """Finetune a VLA with ROCKET as the auxiliary objective."""

    # The VLA that is finetuned; `--backbone.type` picks a registered backbone (default: openvla).
    backbone: BackboneConfig = field(default_factory=OpenVLABackboneConfig)
    # The frozen 3D teacher; `--teacher.type`: "vggt" (VGGT-1B checkpoint, the default), "vggt_random" (tiny random
    # VGGT for CPU runs) or "hf" (a transformers vision model).
    teacher: TeacherConfig = field(default_factory=VGGTCheckpointConfig)
    # Precomputed teacher targets (vla-scripts/precompute_teacher.py): with `dir` set, training reads them and never
    # builds the teacher.
    teacher_cache: TeacherCacheConfig = field(default_factory=TeacherCacheConfig)
    # The ROCKET alignment: layer pairs, coefficient, projector layout.
    rocket: RocketConfig = field(default_factory=RocketConfig)
    # The RLDS training data.
    data: DataConfig = field(default_factory=DataConfig)
    # LoRA adapters on the VLA.
    lora: LoraSettings = field(default_factory=LoraSettings)
    # Optimizer and learning-rate schedule.
    optim: OptimConfig = field(default_factory=OptimConfig)
    # Length, batch, checkpoints, logging.
    run: RunSettings = field(default_factory=RunSettings)
    # Weights & Biases.
    wandb: WandbSettings = field(default_factory=WandbSettings)

    def validate(self) -> None:
        """Checks that need no model or data; raise `ConfigError` naming the field, the value and the fix."""
        self.backbone.validate()
        if self.rocket.enabled:
            self.rocket.validate()
            self.teacher.validate()
        self.teacher_cache.validate()
        self.data.validate()
        self.lora.validate()
        self.optim.validate()
        self.run.validate()
        self.wandb.validate()

    def check_global_batch(self, world_size: int) -> None:
        per_step = self.run.batch_size * world_size * self.optim.grad_accumulation_steps
        if self.run.global_batch_size is not None and self.run.global_batch_size != per_step:
            raise ConfigError(
                f"run.global_batch_size={self.run.global_batch_size} but run.batch_size={self.run.batch_size} x "
                f"{world_size} processes x optim.grad_accumulation_steps={self.optim.grad_accumulation_steps} = "
                f"{per_step}; set run.batch_size={self.run.global_batch_size // max(world_size, 1)} per process "
                "(and accumulation) so the product matches, or unset run.global_batch_size"
            )
