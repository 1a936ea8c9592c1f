"""The CKA tool: minibatch linear CKA between every student layer (its image tokens) and every teacher layer.

Each minibatch runs the student's forward with the residual capture of training on the requested `hidden_states`,
takes the image-token states at training's positions (shift included), and the teacher targets of training (pooled to
the student's grid); a sample's features are its tokens flattened (`[T * D]`, token identity kept, as the release),
with masked tokens (absent cameras, padding) set to zero on both sides. Processes profile their own data shards and
add their HSIC sums at the end.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from tqdm import tqdm

from rocket_openvla.align import resolve_layers
from rocket_openvla.backbones.base import device_autocast, eval_mode
from rocket_openvla.capture import ResidualCapture
from rocket_openvla.profiling.cka import StreamingCKA
from rocket_openvla.profiling.config import CKASettings, ProfileConfig
from rocket_openvla.profiling.session import Session, image_token_states
from rocket_openvla.teachers.registry import TeacherConfig
from rocket_openvla.training.distributed import DistributedContext


def profile_cka(config: ProfileConfig, context: DistributedContext) -> dict[str, Any]:
    """Run the CKA profile on this process's shard and reduce over processes; returns the JSON record."""
    return cka_record(Session.open(config, context, lora=False), config.cka)


def cka_record(session: Session, settings: CKASettings) -> dict[str, Any]:
    """`profile_cka` on an open session (its adapter, data, teacher and token shift)."""
    config, context, adapter = session.config, session.context, session.adapter
    num_states, depth = adapter.num_hidden_layers + 1, config.teacher.num_layers()
    student_layers = resolve_layers(range(num_states) if settings.student_layers is None else settings.student_layers,
                                    num_states, "cka.student_layers")
    teacher_layers = resolve_layers(range(depth) if settings.teacher_layers is None else settings.teacher_layers,
                                    depth, "cka.teacher_layers")
    stream = session.batches(session.teacher(teacher_layers), settings.batch_size)
    accumulator = StreamingCKA(len(student_layers), len(teacher_layers), settings.unbiased, context.device)
    minibatches = math.ceil(settings.num_samples / (settings.batch_size * context.world_size))
    shift = config.rocket.student_token_shift
    capture = ResidualCapture(adapter.capture_points(), student_layers)
    with capture, eval_mode(adapter.policy), torch.no_grad():
        for _ in tqdm(range(minibatches), desc="cka", disable=not context.is_main, dynamic_ncols=True):
            batch, targets, _ = stream.next()
            capture.reset()
            with device_autocast(session.device):
                adapter.policy(batch)
            student, mask = image_token_states(adapter, capture.collect(), batch, student_layers, shift)
            absent = ~mask[..., None]
            accumulator.update([states.masked_fill(absent, 0) for states in student],
                               [target.masked_fill(absent, 0) for target in targets])
    accumulator.all_reduce()
    return {
        "tool": "cka",
        "estimator": "minibatch CKA, unbiased HSIC" if settings.unbiased else "minibatch CKA, biased HSIC",
        "backbone": config.backbone.type,
        "teacher": TeacherConfig.get_choice_name(type(config.teacher)),
        "student_blocks": adapter.num_hidden_layers,
        "teacher_depth": depth,
        "student_layers": student_layers,
        "teacher_layers": teacher_layers,
        "num_samples": int(accumulator.batches.item()) * settings.batch_size,
        "batch_size": settings.batch_size,
        "matrix": [[None if math.isnan(v) else v for v in row] for row in accumulator.matrix().tolist()],
    }
