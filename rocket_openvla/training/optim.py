"""Optimizer and learning-rate schedule: AdamW with OFT's MultiStepLR recipe, or warmup + cosine (openpi)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from rocket_openvla.errors import ConfigError

SCHEDULES = ("multistep", "cosine", "constant")


@dataclass
class OptimConfig:
    """AdamW over every trainable parameter (LoRA, action head, proprio projector, ROCKET projector)."""

    # Peak learning rate (OFT / ROCKET: 5e-4).
    lr: float = 5e-4
    # AdamW weight decay (torch's default 0.01, as OFT).
    weight_decay: float = 0.01
    # AdamW betas, e.g. [0.9,0.999].
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # AdamW epsilon.
    eps: float = 1e-8
    # "multistep": lr x lr_decay_factor from lr_decay_step on (OFT; the ROCKET release decays at 10k); "cosine":
    # warmup, then cosine from lr to lr x min_lr_ratio at lr_decay_step (openpi); "constant".
    schedule: str = "multistep"
    # Step of the multistep decay, or the end of the cosine.
    lr_decay_step: int = 100_000
    # Multistep: factor applied at lr_decay_step.
    lr_decay_factor: float = 0.1
    # Cosine: final lr as a fraction of lr.
    min_lr_ratio: float = 0.1
    # Linear warmup from 0.1 x lr (multistep, as OFT) or ~0 (cosine, as openpi) to lr over this many steps.
    warmup_steps: int = 0
    # Clip the global gradient norm to this value; null: no clipping (as OFT and the OpenVLA ROCKET release).
    max_grad_norm: float | None = None
    # Micro-batches per optimizer step.
    grad_accumulation_steps: int = 1

    def validate(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"optim.schedule={self.schedule!r}; choose one of {SCHEDULES}")
        if self.grad_accumulation_steps < 1:
            raise ConfigError(f"optim.grad_accumulation_steps={self.grad_accumulation_steps}; use 1 or more")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise ConfigError(f"optim.betas={self.betas}; give two values in [0, 1), e.g. [0.9,0.999]")
        if self.lr <= 0:
            raise ConfigError(f"optim.lr={self.lr}; use a positive learning rate (OFT / ROCKET: 5e-4)")
        if self.weight_decay < 0 or self.eps <= 0:
            raise ConfigError(
                f"optim.weight_decay={self.weight_decay}, optim.eps={self.eps}; use weight_decay >= 0 and eps > 0"
            )
        if self.lr_decay_step < 0 or self.warmup_steps < 0:
            raise ConfigError(
                f"optim.lr_decay_step={self.lr_decay_step}, optim.warmup_steps={self.warmup_steps}; use steps >= 0"
            )
        if not 0 < self.lr_decay_factor <= 1 or not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(
                f"optim.lr_decay_factor={self.lr_decay_factor}, optim.min_lr_ratio={self.min_lr_ratio}; use a decay "
                "factor in (0, 1] and a final ratio in [0, 1]"
            )
        if self.max_grad_norm is not None and self.max_grad_norm <= 0:
            raise ConfigError(f"optim.max_grad_norm={self.max_grad_norm}; use a positive norm or null (no clipping)")


def lr_multiplier(config: OptimConfig, step: int) -> float:
    """Learning-rate factor at optimizer step `step` (0-based)."""
    if config.schedule == "cosine":
        if step < config.warmup_steps:
            return (step + 1) / (config.warmup_steps + 1)
        span = max(config.lr_decay_step - config.warmup_steps, 1)
        progress = min((step - config.warmup_steps) / span, 1.0)
        return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    warmup = 0.1 + 0.9 * step / config.warmup_steps if step < config.warmup_steps else 1.0
    if config.schedule == "multistep" and step >= config.lr_decay_step:
        return warmup * config.lr_decay_factor
    return warmup


def build_optimizer(
    config: OptimConfig, modules: list[nn.Module]
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters of `modules` and its LambdaLR schedule."""
    config.validate()
    parameters = [p for module in modules for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, betas=tuple(config.betas), eps=config.eps,
                                  weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_multiplier(config, step))
    return optimizer, scheduler
