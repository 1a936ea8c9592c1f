"""Configs of the two profiling entry points (draccus; parsing imports no model code).

`ProfileConfig` (`vla-scripts/profile_alignment.py`) is a `FinetuneConfig` plus the profiling sections, so a training
config (`--config_path configs/quickstart.yaml`) describes the model, teacher, data and ROCKET pairs it profiles.
`SelectLayersConfig` (`vla-scripts/select_layers.py`) needs only layer counts, or a CKA profile.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from rocket_openvla.align import RocketConfig
from rocket_openvla.errors import ConfigError, check_choice
from rocket_openvla.profiling.cka import MIN_UNBIASED_BATCH
from rocket_openvla.profiling.selection import STUDENT_LAST_CHOICES
from rocket_openvla.training.config import FinetuneConfig

PROFILE_TOOLS = ("cka", "gradient_conflict", "projector_similarity")
# Projector layouts of the paper's ablation: name -> (rocket.share_projector, rocket.matryoshka)
LAYOUTS = {"rocket": (True, True), "shared": (True, False), "independent": (False, False)}
PROFILING_DIR = "profiling"  # results go to <run directory>/profiling/ unless output_dir is set


def layout_name(rocket: RocketConfig) -> str:
    """The `LAYOUTS` name of a rocket section's projector layout."""
    if not rocket.share_projector:
        return "independent"
    return "rocket" if rocket.matryoshka else "shared"


def with_layout(rocket: RocketConfig, layout: str) -> RocketConfig:
    """`rocket` with the projector layout `layout` (a `LAYOUTS` name)."""
    share_projector, matryoshka = LAYOUTS[layout]
    return dataclasses.replace(rocket, share_projector=share_projector, matryoshka=matryoshka)


@dataclass
class CKASettings:
    # Samples over all processes (each process runs ceil(num_samples / (batch_size x processes)) minibatches).
    num_samples: int = 256
    # Samples per minibatch, the unit of the minibatch estimator (at least 4; larger minibatches lower its variance).
    batch_size: int = 16
    # Student `hidden_states` indices to profile; null: every one (0 = embeddings .. n = after the final norm).
    student_layers: list[int] | None = None
    # Teacher layers to profile; null: every one.
    teacher_layers: list[int] | None = None
    # Unbiased HSIC per minibatch (Nguyen et al. 2021); false: biased HSIC per minibatch (with a single minibatch of
    # all samples this is the release's estimator).
    unbiased: bool = True

    def validate(self) -> None:
        if self.num_samples < 1:
            raise ConfigError(f"cka.num_samples={self.num_samples}; use 1 or more")
        least = MIN_UNBIASED_BATCH if self.unbiased else 2
        if self.batch_size < least:
            raise ConfigError(f"cka.batch_size={self.batch_size}; the {'un' if self.unbiased else ''}biased HSIC "
                              f"needs minibatches of at least {least} samples")


@dataclass
class GradientSettings:
    # Batches (of run.batch_size samples per process) whose per-batch cosine matrices are averaged, at every step.
    num_batches: int = 4
    # Regular expression over trainable parameter names (as in a checkpoint's trainable.safetensors, e.g.
    # "lora_.*layers\.0\."); null: the LoRA weights of the first decoder block (the release's choice).
    parameters: str | None = None
    # Projector layouts profiled from the same initialisation: any of "rocket" (shared + Matryoshka), "shared",
    # "independent"; null: the config's own rocket section (and always so for `checkpoints`).
    layouts: list[str] | None = None

    def validate(self) -> None:
        if self.num_batches < 1:
            raise ConfigError(f"gradient.num_batches={self.num_batches}; use 1 or more")
        for layout in self.layouts or []:
            check_choice("gradient.layouts entry", layout, tuple(LAYOUTS))


@dataclass
class ProjectorSettings:
    # Batches (of run.batch_size samples per process) for the similarity of projector outputs; 0: weights only
    # (no model is built).
    num_batches: int = 4
    # A projector file of the ROCKET release (`align_projectors--*.pt`) instead of `checkpoints`: weights only;
    # the rocket section must describe its layout (share_projector, matryoshka, pairs, ensemble_size).
    release_file: Path | None = None

    def validate(self) -> None:
        if self.num_batches < 0:
            raise ConfigError(f"projector.num_batches={self.num_batches}; use 0 (weights only) or more")


@dataclass
class ProfileConfig(FinetuneConfig):
    """Profile a ROCKET set-up: CKA between layers, gradient conflict between pairs, projector similarity."""

    # "cka", "gradient_conflict" or "projector_similarity".
    tool: str = "cka"
    # A run directory (all its checkpoints, in step order) or one checkpoint directory: gradient conflict and
    # projector similarity at the saved steps. The run's config.yaml then supplies every model and data section.
    checkpoints: Path | None = None
    # Where results (JSON, PNG) go; null: <run directory>/profiling.
    output_dir: Path | None = None
    # CKA between every student layer (image tokens) and every teacher layer.
    cka: CKASettings = field(default_factory=CKASettings)
    # Pairwise cosine of the per-pair alignment-loss gradients.
    gradient: GradientSettings = field(default_factory=GradientSettings)
    # Similarity of the pairs' projectors (weights and outputs).
    projector: ProjectorSettings = field(default_factory=ProjectorSettings)

    def validate(self) -> None:
        check_choice("tool", self.tool, PROFILE_TOOLS)
        self.cka.validate()
        self.gradient.validate()
        self.projector.validate()
        if self.tool == "projector_similarity" and self.checkpoints is None and self.projector.release_file is None:
            raise ConfigError("tool=projector_similarity needs trained projectors: pass --checkpoints <run or "
                              "checkpoint directory> or --projector.release_file <align_projectors--*.pt>")
        if self.checkpoints is not None and self.tool == "cka":
            raise ConfigError(f"checkpoints={self.checkpoints} with tool=cka: the CKA profiles a model as the config "
                              "builds it; for a trained run pass --backbone.pretrained <checkpoint>/policy instead")
        if self.checkpoints is not None and self.gradient.layouts:
            raise ConfigError(f"gradient.layouts={self.gradient.layouts} with checkpoints={self.checkpoints}: a run's "
                              "checkpoints have the run's own layout; drop gradient.layouts (or profile at "
                              "initialisation without checkpoints)")
        if self.checkpoints is not None:
            return  # the run's own config describes the model (validated when the run started)
        if self.tool == "cka":  # every layer is profiled: the rocket pairs may still be unset
            FinetuneConfig.validate(dataclasses.replace(self, rocket=dataclasses.replace(self.rocket, coeff=0.0)))
            self.teacher.validate()
        elif not self.rocket.enabled:
            raise ConfigError(f"tool={self.tool} profiles the ROCKET pairs, but rocket.coeff is 0; set a positive "
                              "rocket.coeff and the layer pairs")
        else:
            super().validate()


@dataclass
class SelectLayersConfig:
    """Choose ROCKET layer pairs without training."""

    # Layer pairs to choose (K).
    num_pairs: int = 10
    # Decoder blocks n of the student (OpenVLA-7B: 32; PaliGemma-3B in PI0: 18); with `cka`, read from the profile.
    student_blocks: int = 32
    # Teacher blocks (VGGT-1B: 24); with `cka`, read from the profile.
    teacher_blocks: int = 24
    # The last student layer of E2M-Last: "before_last_block" (hidden_states[n-1], what the release's OpenVLA code
    # makes of -1: the paper's OpenVLA-7B pairs) or "final_norm" (hidden_states[n], the release's OpenPI -1).
    student_last: str = "before_last_block"
    # A CKA profile (cka.json of `profile_alignment.py --tool cka`): adds the CKA pairings (the order-preserving
    # dynamic programme and the release's Hungarian assignment).
    cka: Path | None = None
    # Where selection.json (and with `cka`, selection.png) is written; null: beside `cka`, else
    # runs/layer_selection.
    output_dir: Path | None = None

    def validate(self) -> None:
        check_choice("student_last", self.student_last, STUDENT_LAST_CHOICES)
        for name in ("num_pairs", "student_blocks", "teacher_blocks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; use 1 or more")

    @property
    def resolved_output_dir(self) -> Path:
        if self.output_dir is not None:
            return self.output_dir
        return self.cka.parent if self.cka is not None else Path("runs") / "layer_selection"
