"""The pieces every profiling tool builds the way training does: data shard, backbone adapter (+ LoRA), teacher,
ROCKET training step, saved checkpoints.

The tools see exactly what the finetune loop sees: the same processor and collator, the same teacher targets pooled to
the student's grid, the same residual capture (`TrainStep` for the ROCKET pairs), token positions, shift and masks.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from rocket_openvla.align import RocketConfig, RocketObjective, RocketOutput, gather_tokens
from rocket_openvla.backbones.base import BackboneAdapter
from rocket_openvla.data.pipeline import RLDSDataset
from rocket_openvla.teachers.base import Teacher
from rocket_openvla.teachers.registry import StudentView
from rocket_openvla.training.batches import BatchStream
from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.loop import build_rank_dataset
from rocket_openvla.training.rng import seed_everything
from rocket_openvla.training.step import TrainStep
from rocket_openvla.training.targets import OnlineTargets

Batch = tuple[dict[str, Any], list[torch.Tensor], torch.Tensor | None]  # (batch, teacher targets, [B] target mask)


@dataclass
class Session:
    """A backbone adapter on the device and this process's data, built like the finetune loop builds them."""

    config: FinetuneConfig
    context: DistributedContext
    adapter: BackboneAdapter
    dataset: RLDSDataset
    _samples: Iterator[dict[str, Any]] | None = field(default=None, init=False, repr=False)
    _teachers: dict[tuple[int, ...], Teacher] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def open(cls, config: FinetuneConfig, context: DistributedContext, lora: bool) -> Session:
        """Build this process's dataset and the adapter (with LoRA applied as the run applies it, when `lora`)."""
        dataset = build_rank_dataset(config.data, context)
        seed_everything(config.run.seed)
        adapter = config.backbone.build()
        if lora and not adapter.has_lora:
            settings = config.lora
            adapter.apply_lora(settings.rank, settings.effective_alpha, settings.dropout, settings.target_modules,
                               settings.init)
        adapter.set_dataset_statistics(dataset.dataset_statistics)
        adapter.policy.to(context.device)
        return cls(config, context, adapter, dataset)

    @property
    def device(self) -> torch.device:
        return self.context.device

    def teacher(self, layers: list[int]) -> Teacher:
        """The frozen teacher returning targets for `layers`, pooled to this student's grid (built once per layer
        list)."""
        key = tuple(layers)
        if key not in self._teachers:
            view = StudentView.of(self.adapter)
            self._teachers[key] = self.config.teacher.build(list(layers), view, self.config.rocket).to(self.device)
        return self._teachers[key]

    def batches(self, teacher: Teacher, batch_size: int) -> BatchStream:
        """This process's micro-batches on the device, with the teacher's targets; every stream continues the
        session's one sample iterator (its shuffle buffer is filled once)."""
        if self._samples is None:
            self._samples = iter(self.dataset)
        processor = self.adapter.processor
        return BatchStream(self._samples, batch_size, processor, processor.collator(),
                           OnlineTargets(teacher, self.adapter), self.device)

    def fixed_batches(self, teacher: Teacher, batch_size: int, count: int) -> list[Batch]:
        """`count` batches drawn once, so that every layout and checkpoint is profiled on the same samples."""
        stream = self.batches(teacher, batch_size)
        return [stream.next() for _ in range(count)]

    @contextlib.contextmanager
    def train_step(self, rocket: RocketConfig, teacher_dim: int) -> Iterator[TrainStep]:
        """The finetune loop's `TrainStep` for `rocket`'s pairs, its projector initialised from `run.seed`; its
        capture hooks are removed on exit."""
        adapter = self.adapter
        student_layers, _ = rocket.resolve_pairs(adapter.num_hidden_layers + 1, self.config.teacher.num_layers())
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.config.run.seed)
            objective = RocketObjective(rocket, adapter.hidden_size, teacher_dim)
        step = TrainStep(adapter, objective, rocket, student_layers).to(self.device)
        try:
            yield step
        finally:
            step.capture.remove()


def image_token_states(adapter: BackboneAdapter, states: dict[int, torch.Tensor], batch: dict[str, Any],
                       layers: list[int], shift: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The image-token states `[B, T, D]` of each layer in `layers` (positions as `TrainStep`: the adapter's, plus
    `rocket.student_token_shift`) and the `[B, T]` token mask."""
    tokens = adapter.image_tokens(batch)
    positions = tokens.positions + shift
    return [gather_tokens(states[layer], positions) for layer in layers], tokens.mask


@contextlib.contextmanager
def objective_calls(step: TrainStep) -> Iterator[list[tuple[tuple, RocketOutput]]]:
    """Record every call of the step's ROCKET objective: its inputs `(student [K x [B, T, Ds]], teacher [K x [B, T,
    Dt]], mask [B, T])` and its `RocketOutput` (per-pair losses with their graph)."""
    calls: list[tuple[tuple, RocketOutput]] = []
    handle = step.objective.register_forward_hook(lambda module, args, output: calls.append((args, output)))
    try:
        yield calls
    finally:
        handle.remove()
