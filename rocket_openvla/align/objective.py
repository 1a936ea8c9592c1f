"""`RocketObjective`: the ROCKET alignment loss over K student/teacher layer pairs.

    L_align = 1/K sum_i  mean_e  loss( proj_{g(i,e)}[:m_i](s_i), t_i )

where s_i are the student's image-token states at layer pair i, t_i the pooled teacher tokens, m_i the pair's
hidden width (Matryoshka prefix) and g(i, e) the projector used by pair i and ensemble member e: member e of the
one shared ensemble (ROCKET), or pair i's own member e (independent projectors, the "naive" ablation). Each
pair runs its projector at its exact width (no wasted FLOPs on masked units); the cosine terms of all pairs and
members are then reduced in one fused, masked pass with no host synchronisation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from rocket_openvla.align.config import RocketConfig
from rocket_openvla.align.loss import cosine_similarity, masked_alignment_loss
from rocket_openvla.align.projector import ProjectorBank
from rocket_openvla.align.release_checkpoint import parse_release_state_dict
from rocket_openvla.errors import ConfigError


@dataclass
class RocketOutput:
    loss: torch.Tensor  # scalar: mean over pairs of the per-pair loss
    pair_losses: torch.Tensor  # [K]
    metrics: dict[str, torch.Tensor]  # detached


class RocketObjective(nn.Module):
    def __init__(self, config: RocketConfig, student_dim: int, teacher_dim: int) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.student_dim, self.teacher_dim = student_dim, teacher_dim
        self.hidden_dim = config.hidden_dim or teacher_dim
        self.widths = config.pair_widths(self.hidden_dim)
        num_sets = 1 if config.share_projector else config.num_pairs
        self.projectors = ProjectorBank(
            num_sets * config.ensemble_size, student_dim, self.hidden_dim, teacher_dim, config.input_norm
        )

    @property
    def num_pairs(self) -> int:
        return self.config.num_pairs

    @property
    def ensemble_size(self) -> int:
        return self.config.ensemble_size

    def projector_index(self, pair: int, member: int) -> int:
        """Index in the projector bank of ensemble member `member` serving pair `pair`."""
        owner = 0 if self.config.share_projector else pair
        return owner * self.ensemble_size + member

    def forward(
        self,
        student: Sequence[torch.Tensor],
        teacher: Sequence[torch.Tensor],
        mask: torch.Tensor | None = None,
    ) -> RocketOutput:
        """Alignment loss of all pairs.

        Args:
            student: K tensors `[B, T, Ds]`, the image-token states of each pair's student layer.
            teacher: K tensors `[B, T, Dt]`, the pooled teacher tokens of each pair's teacher layer.
            mask: `[B, T]` bool of valid tokens, or None.

        Returns:
            `RocketOutput` with the scalar loss, per-pair losses `[K]` and detached metrics.
        """
        self._check_inputs(student, teacher, mask)
        cosines = torch.stack([
            torch.stack([
                cosine_similarity(
                    self.projectors(states, self.projector_index(pair, member), self.widths[pair]), target
                )
                for member in range(self.ensemble_size)
            ])
            for pair, (states, target) in enumerate(zip(student, teacher))
        ])  # [K, E, B, T]
        member_losses = masked_alignment_loss(cosines, mask)  # [K, E]
        pair_losses = member_losses.mean(dim=1)
        loss = pair_losses.mean()
        metrics = {"align/loss": loss.detach(), "align/pair_losses": pair_losses.detach()}
        if self.ensemble_size > 1:
            metrics["align/member_losses"] = member_losses.detach()  # [K, E]
        return RocketOutput(loss=loss, pair_losses=pair_losses, metrics=metrics)

    def _check_inputs(self, student: Sequence[torch.Tensor], teacher: Sequence[torch.Tensor],
                      mask: torch.Tensor | None) -> None:
        if len(student) != self.num_pairs or len(teacher) != self.num_pairs:
            raise ValueError(
                f"expected {self.num_pairs} student and teacher tensors (one per layer pair), "
                f"got {len(student)} and {len(teacher)}"
            )
        reference = student[0].shape[:2]
        for pair, (states, target) in enumerate(zip(student, teacher)):
            if states.dim() != 3 or states.shape[-1] != self.student_dim:
                raise ValueError(f"student[{pair}] must be [B, T, {self.student_dim}], got {tuple(states.shape)}")
            if target.dim() != 3 or target.shape[-1] != self.teacher_dim:
                raise ValueError(f"teacher[{pair}] must be [B, T, {self.teacher_dim}], got {tuple(target.shape)}")
            if states.shape[:2] != reference or target.shape[:2] != reference:
                raise ValueError(
                    f"pair {pair}: student {tuple(states.shape[:2])} and teacher {tuple(target.shape[:2])} [B, T] "
                    f"must match pair 0's {tuple(reference)}; pool the teacher to the student's token grid"
                )
        if mask is not None and (mask.dtype != torch.bool or mask.shape != reference):
            raise ValueError(
                f"mask must be a bool [B, T] = {tuple(reference)} tensor, got {mask.dtype} {tuple(mask.shape)}"
            )

    def load_reference_state_dict(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Load the release's `align_projectors--*.pt` state dict (keys `[module.]{pair}.{member}.fc1.weight`, ...).

        A shared-projector run repeats the same tensors under every pair index; an independent run has one set per
        pair. The layout, pair and member counts and input norm must match this objective's config.
        """
        projectors = parse_release_state_dict(state_dict)
        expected = {(pair, member) for pair in range(self.num_pairs) for member in range(self.ensemble_size)}
        found = set(projectors)
        if found != expected:
            raise ConfigError(
                f"release state dict holds (pair, member) slots {sorted(found)}, but this objective has "
                f"{self.num_pairs} pairs x {self.ensemble_size} members; match rocket.student_layers and "
                "rocket.ensemble_size to the run that saved it"
            )
        for (pair, member), tensors in projectors.items():
            if ("norm.weight" in tensors) != self.config.input_norm:
                raise ConfigError(
                    f"release projector {pair}.{member} {'has' if 'norm.weight' in tensors else 'lacks'} vlm_norm "
                    f"but rocket.input_norm={self.config.input_norm}; set it to match the run"
                )
            index = self.projector_index(pair, member)
            if self.config.share_projector and pair > 0:
                self._check_shared_copy(projectors[(0, member)], tensors, pair, member)
                continue
            self.projectors.load_projector(index, tensors)

    @staticmethod
    def _check_shared_copy(first: Mapping[str, torch.Tensor], tensors: Mapping[str, torch.Tensor],
                           pair: int, member: int) -> None:
        if any(not torch.equal(first[name], tensors[name]) for name in first):
            raise ConfigError(
                f"release projector {pair}.{member} differs from 0.{member}: the state dict holds independent "
                "projectors; set rocket.share_projector=false to load it"
            )
