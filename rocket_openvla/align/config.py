"""`RocketConfig`: every knob of the ROCKET objective, draccus-friendly.

Defaults reproduce the released ROCKET code (arXiv 2602.17951, CASE-Lab-UMD/ROCKET-VLA @ d3da2c7) where it is
right. Layer indices follow the package conventions: student index = Hugging Face `hidden_states`
index, teacher index = VGGT aggregator block index; negative indices are Python-style.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rocket_openvla.align.layers import resolve_layers
from rocket_openvla.align.pooling import POOLING_MODES
from rocket_openvla.errors import ConfigError

MIN_WIDTH_RATIO = 0.2
MAX_WIDTH_RATIO = 1.0


@dataclass
class RocketConfig:
    # Student layers to align, as Hugging Face `hidden_states` indices (0 = embeddings, k = output of block k-1, n =
    # after the final norm; negatives count from the end), e.g. [2,4,6,8,10,12,14,16,18,31] (the paper's OpenVLA-7B).
    student_layers: list[int] = field(default_factory=list)
    # Teacher layer paired with each student layer (VGGT aggregator blocks 0..23), e.g. [2,4,6,8,10,12,14,16,18,-1].
    teacher_layers: list[int] = field(default_factory=list)
    # Weight of the alignment loss in `action_loss + coeff * align_loss`; 0 is the baseline (no teacher, no projector).
    coeff: float = 0.5
    # One projector shared by every pair (ROCKET); false gives each pair its own (the "naive multi-layer" ablation).
    share_projector: bool = True
    # Shared projector: pair i uses only the first int(H * r_i) hidden units, r linear 0.2 -> 1.0 over the pairs.
    matryoshka: bool = True
    # Explicit per-pair width ratios in (0, 1], e.g. [0.2,0.2] (override the schedule in every layout); null: schedule.
    width_ratios: list[float] | None = None
    # True: shallow pairs get the narrow prefixes, deep pairs the wide ones; false reverses the widths.
    shallow_to_deep: bool = True
    # Projectors per pair whose losses are averaged (an ensemble; the release's default is 1).
    ensemble_size: int = 1
    # Projector hidden width H; null: the teacher feature dim (2048 for VGGT-1B, as the release).
    hidden_dim: int | None = None
    # LayerNorm on the student state before the projector (on in every released config).
    input_norm: bool = True
    # Add pos_embed_scale * uv-sincos position embedding to teacher tokens before resampling (on in every release).
    teacher_pos_embed: bool = True
    # Scale of that position embedding (the release: 0.1).
    pos_embed_scale: float = 0.1
    # Teacher -> student grid resampling: "bilinear" (the release, align_corners=True) or "area" (anti-aliased).
    pooling: str = "bilinear"
    # Pair the student token at image patch k + shift with teacher patch k (the OpenVLA release uses 1).
    student_token_shift: int = 0

    @property
    def num_pairs(self) -> int:
        return len(self.student_layers)

    @property
    def enabled(self) -> bool:
        """False for the baseline (`coeff == 0`): no teacher, no projector."""
        return self.coeff != 0

    @property
    def nested_widths(self) -> bool:
        """Widths depend on a pair's position in the list (shared projector with Matryoshka)."""
        return self.share_projector and self.matryoshka

    def validate(self) -> None:
        """Check everything that does not depend on the model sizes; raise ConfigError naming field, value and fix."""
        if self.coeff < 0:
            raise ConfigError(
                f"rocket.coeff={self.coeff}; use a weight >= 0 (0 trains the baseline without alignment)"
            )
        if not self.student_layers or not self.teacher_layers:
            raise ConfigError(
                f"rocket.student_layers={self.student_layers} / rocket.teacher_layers={self.teacher_layers}: "
                "both need at least one layer (e.g. the paper's OpenVLA-7B pairs --rocket.student_layers "
                "'[2,4,6,8,10,12,14,16,18,31]' --rocket.teacher_layers '[2,4,6,8,10,12,14,16,18,-1]'), "
                "or set --rocket.coeff 0 for the baseline"
            )
        if len(self.student_layers) != len(self.teacher_layers):
            raise ConfigError(
                f"rocket.student_layers has {len(self.student_layers)} entries but rocket.teacher_layers has "
                f"{len(self.teacher_layers)}; give one teacher layer per student layer"
            )
        if self.width_ratios is not None:
            if len(self.width_ratios) != self.num_pairs:
                raise ConfigError(
                    f"rocket.width_ratios={self.width_ratios} has {len(self.width_ratios)} entries for "
                    f"{self.num_pairs} layer pairs; give one ratio per pair or leave it unset"
                )
            bad = [r for r in self.width_ratios if not 0.0 < r <= 1.0]
            if bad:
                raise ConfigError(
                    f"rocket.width_ratios={self.width_ratios}: {bad} outside (0, 1]; use ratios in (0, 1]"
                )
        if self.ensemble_size < 1:
            raise ConfigError(f"rocket.ensemble_size={self.ensemble_size}; use 1 or more projectors per pair")
        if self.hidden_dim is not None and self.hidden_dim < 1:
            raise ConfigError(f"rocket.hidden_dim={self.hidden_dim}; use a positive width or None (= teacher dim)")
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"rocket.pooling={self.pooling!r}; choose one of {POOLING_MODES}")
        if self.pos_embed_scale < 0:
            raise ConfigError(f"rocket.pos_embed_scale={self.pos_embed_scale}; use a scale >= 0 (the release: 0.1)")
        if self.student_token_shift < 0:
            raise ConfigError(f"rocket.student_token_shift={self.student_token_shift}; use 0 or a positive shift")

    def pair_width_ratios(self) -> list[float]:
        """Per-pair fraction of the projector's hidden units, in pair order."""
        if self.width_ratios is not None:
            ratios = list(self.width_ratios)
        elif self.nested_widths:
            steps = max(self.num_pairs - 1, 1)
            span = MAX_WIDTH_RATIO - MIN_WIDTH_RATIO
            ratios = [MIN_WIDTH_RATIO + span * i / steps for i in range(self.num_pairs)]
        else:
            ratios = [1.0] * self.num_pairs
        return ratios if self.shallow_to_deep else ratios[::-1]

    def pair_widths(self, hidden_dim: int) -> list[int]:
        """Per-pair hidden width `max(1, int(hidden_dim * r_i))` (floor, as the release)."""
        return [max(1, int(hidden_dim * ratio)) for ratio in self.pair_width_ratios()]

    def resolve_pairs(self, num_student_states: int, num_teacher_layers: int) -> tuple[list[int], list[int]]:
        """Resolve both layer lists against the model sizes.

        Args:
            num_student_states: entries of the student's `hidden_states` (n_layers + 1).
            num_teacher_layers: teacher blocks (24 for VGGT-1B).

        Returns:
            `(student_layers, teacher_layers)` with non-negative indices.
        """
        self.validate()
        student = resolve_layers(self.student_layers, num_student_states, "rocket.student_layers")
        teacher = resolve_layers(self.teacher_layers, num_teacher_layers, "rocket.teacher_layers")
        for name, resolved in (("rocket.student_layers", student), ("rocket.teacher_layers", teacher)):
            if len(set(resolved)) != len(resolved):
                raise ConfigError(f"{name}={resolved} (resolved) repeats a layer; align each layer once")
        if self.nested_widths and student != sorted(student):
            raise ConfigError(
                f"rocket.student_layers={student} (resolved) must be ascending while the Matryoshka schedule is on: "
                "pair i gets the i-th width, so sort the pairs by student layer (or set --rocket.matryoshka false)"
            )
        return student, teacher
