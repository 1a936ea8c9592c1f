"""`FinetuneConfig`: the whole finetune job as one draccus config (YAML via `--config_path`, any field on the CLI).

    python vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml --run.max_steps 50
    torchrun --nproc-per-node 4 vla-scripts/finetune_rocket.py --config_path configs/paper/openvla_libero_rocket.yaml
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rocket_openvla.align import RocketConfig
from rocket_openvla.backbones.registry import BackboneConfig
from rocket_openvla.data.config import DataConfig
from rocket_openvla.training.auxiliary import effective_rocket_config
from rocket_openvla.training.optim import OptimConfig
from rocket_openvla.training.teacher_config import TeacherConfig

WANDB_MODES = ("online", "offline", "disabled")


@dataclass
class LoraSettings:
    # OFT / ROCKET: rank 32, alpha min(rank, 16), no dropout, every linear layer of the VLA, gaussian init.
    rank: int = 32
    alpha: float | None = None  # None = min(rank, 16)
    dropout: float = 0.0
    target_modules: str = "all-linear"
    init: str = "gaussian"
    # At the end of the run, merge the adapter into the base weights and write the deployable policy (full VLA
    # weights + heads + statistics) to <run_dir>/merged.
    merge_at_end: bool = False

    @property
    def effective_alpha(self) -> float:
        return float(min(self.rank, 16)) if self.alpha is None else self.alpha


@dataclass
class RunSettings:
    max_steps: int = 50_000
    # Samples per process per micro-batch; the global batch is batch_size x processes x grad accumulation.
    batch_size: int = 8
    # When set, must equal batch_size x processes x optim.grad_accumulation_steps (a guard for presets).
    global_batch_size: int | None = None
    save_freq: int = 5_000
    # Keep only the newest N checkpoints (None keeps all).
    keep_last: int | None = None
    log_freq: int = 10
    seed: int = 42
    run_root_dir: Path = Path("runs")
    # Run directory name under run_root_dir; None derives one from the backbone, data and objective.
    run_id: str | None = None
    # Continue the run in run_root_dir/run_id from its latest checkpoint.
    resume: bool = False
    # Allow starting a new run in a directory that holds a run with a different config.
    overwrite: bool = False
    # Abort after this many consecutive optimizer steps with a non-finite loss (each is skipped).
    max_nonfinite_steps: int = 5


@dataclass
class WandbSettings:
    project: str = "rocket_openvla"
    entity: str | None = None
    mode: str = "offline"  # online | offline | disabled (WANDB_MODE in the environment wins)


@dataclass
class FinetuneConfig:
    backbone: BackboneConfig = field(default_factory=lambda: BackboneConfig.get_choice_class("openvla")())
    teacher: TeacherConfig = field(default_factory=lambda: TeacherConfig.get_choice_class("vggt")())
    rocket: RocketConfig = field(default_factory=RocketConfig)
    # Registered auxiliary objective (training/auxiliary.py): "rocket" (shared projector), "naive" (one projector
    # per pair) or "spatial_forcing" (one pair, its own projector); the latter two set share_projector=False.
    objective: str = "rocket"
    data: DataConfig = field(default_factory=DataConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunSettings = field(default_factory=RunSettings)
    wandb: WandbSettings = field(default_factory=WandbSettings)

    def validate(self) -> None:
        """Checks that need no model or data; raise ValueError naming field, value and fix."""
        if self.rocket.enabled:
            self.effective_rocket().validate()
        self.optim.validate()
        self.data.validate()
        if self.wandb.mode not in WANDB_MODES:
            raise ValueError(f"wandb.mode={self.wandb.mode!r}; choose one of {WANDB_MODES}")
        for name in ("max_steps", "batch_size", "save_freq", "log_freq", "max_nonfinite_steps"):
            if getattr(self.run, name) < 1:
                raise ValueError(f"run.{name}={getattr(self.run, name)}; use a positive value")
        if self.run.keep_last is not None and self.run.keep_last < 1:
            raise ValueError(f"run.keep_last={self.run.keep_last}; keep at least 1 checkpoint or set None")

    def effective_rocket(self) -> RocketConfig:
        """The `rocket` section as the chosen `objective` trains it."""
        return effective_rocket_config(self.objective, self.rocket)

    def check_global_batch(self, world_size: int) -> None:
        per_step = self.run.batch_size * world_size * self.optim.grad_accumulation_steps
        if self.run.global_batch_size is not None and self.run.global_batch_size != per_step:
            raise ValueError(
                f"run.global_batch_size={self.run.global_batch_size} but run.batch_size={self.run.batch_size} x "
                f"{world_size} processes x optim.grad_accumulation_steps={self.optim.grad_accumulation_steps} = "
                f"{per_step}; set run.batch_size={self.run.global_batch_size // max(world_size, 1)} per process "
                "(and accumulation) so the product matches, or unset run.global_batch_size"
            )
