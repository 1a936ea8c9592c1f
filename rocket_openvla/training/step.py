"""`TrainStep`: one module holding everything that trains, so a single DDP wrapper syncs all of it.

    total = action_loss + coeff * align_loss

The policy (LoRA'd VLA + action head + proprio projector) computes the action loss; hooks on its decoder record
`hidden_states[k]` of the student layers during that same forward; the image-token states (at the positions the
backbone adapter names for this batch, shifted by `rocket.student_token_shift`) are projected by the ROCKET objective
onto the teacher targets (computed outside, frozen, without gradient), masked where a camera is absent.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rocket_openvla.align import RocketConfig, RocketObjective, gather_tokens
from rocket_openvla.backbones.base import BackboneAdapter
from rocket_openvla.capture import ResidualCapture


@dataclass
class StepOutput:
    loss: torch.Tensor  # scalar total loss
    metrics: dict[str, torch.Tensor]  # detached


class TrainStep(nn.Module):
    def __init__(self, adapter: BackboneAdapter, objective: RocketObjective | None, rocket: RocketConfig,
                 student_layers: list[int]) -> None:
        """
        Args:
            objective: None for the baseline (`rocket.coeff == 0`).
            student_layers: resolved `hidden_states` indices, one per pair (`RocketConfig.resolve_pairs`).
        """
        super().__init__()
        self.adapter = adapter
        self.policy = adapter.policy
        self.objective = objective
        self.coeff = rocket.coeff
        self.token_shift = rocket.student_token_shift
        self.student_layers = student_layers
        self.capture = ResidualCapture(adapter.capture_points(), student_layers) if objective is not None else None
        if self.capture is not None:
            self.capture.attach()

    def forward(self, batch: dict[str, torch.Tensor], teacher_targets: list[torch.Tensor] | None = None,
                target_valid: torch.Tensor | None = None) -> StepOutput:
        """
        Args:
            batch: the collated policy inputs.
            teacher_targets: K tensors `[B, T, Dt]` (one per pair, in the adapter's image-token order), or None for the
                baseline.
            target_valid: `[B]` bool, False for samples without targets (a cache's `stride`); None: all have them.
        """
        if self.objective is None:
            output = self.policy(batch)
            return StepOutput(loss=output.loss, metrics={"loss": output.loss.detach(), **output.metrics})
        self.capture.reset()
        output = self.policy(batch)
        states = self.capture.collect()
        tokens = self.adapter.image_tokens(batch)
        positions = tokens.positions + self.token_shift
        student = [gather_tokens(states[layer], positions) for layer in self.student_layers]
        mask = tokens.mask if target_valid is None else tokens.mask & target_valid[:, None]
        aligned = self.objective(student, teacher_targets, mask)
        loss = output.loss + self.coeff * aligned.loss
        return StepOutput(loss=loss, metrics={"loss": loss.detach(), **output.metrics, **aligned.metrics})
