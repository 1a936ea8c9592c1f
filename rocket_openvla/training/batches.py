"""`BatchStream`: micro-batches on the device with their teacher targets, the next batch's target read running ahead.

Drawing a batch's samples starts its target read (a cache read runs in reader threads). With `lookahead`, the stream
draws the next batch before handing out this one, so that read overlaps with this batch's forward and backward. The
samples drawn ahead are not yet in the training step, so a checkpoint must not be taken while the stream holds them:
the loop asks for no lookahead on the last micro-batch before a save, and the saved data-iterator position then
matches the samples trained on (exact resume).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch

from rocket_openvla.backbones.base import tensors_to
from rocket_openvla.training.targets import CachedTargets, OnlineTargets


class BatchStream:
    def __init__(self, samples: Iterator[dict[str, Any]], batch_size: int, processor: Any, collate: Any,
                 targets: OnlineTargets | CachedTargets | None, device: torch.device) -> None:
        self.samples, self.batch_size = samples, batch_size
        self.processor, self.collate = processor, collate
        self.targets, self.device = targets, device
        self._ahead: tuple[list[dict[str, Any]], Any] | None = None

    @property
    def holds_samples_ahead(self) -> bool:
        return self._ahead is not None

    def next(self, lookahead: bool = False) -> tuple[dict[str, Any], list[torch.Tensor] | None, torch.Tensor | None]:
        """The next micro-batch on the device, its targets (None for the baseline) and their `[B]` mask (None: all).

        Args:
            lookahead: draw the following batch now and start its target read.
        """
        drawn, pending = self._ahead if self._ahead is not None else self._draw()
        self._ahead = self._draw() if lookahead else None
        batch = self.collate([self.processor(sample) for sample in drawn])
        batch = tensors_to(batch, self.device)
        if self.targets is None:
            return batch, None, None
        targets, valid = self.targets.targets(batch, pending)
        return batch, targets, valid

    def _draw(self) -> tuple[list[dict[str, Any]], Any]:
        drawn = [next(self.samples) for _ in range(self.batch_size)]
        return drawn, self.targets.prefetch(drawn) if self.targets is not None else None
