"""Frozen feature teachers for ROCKET: VGGT (clean-room, loads VGGT-1B) and any transformers vision model.

Every teacher satisfies ``Teacher``: ``teacher(images)`` returns one ``[B, V*gh*gw, feature_dim]`` fp32 target per
requested layer, pooled to the student's per-camera grid.
"""

from rocket_openvla.teachers.base import FrozenTeacher, Teacher, TeacherPooling
from rocket_openvla.teachers.hf_vision import HFVisionTeacher
from rocket_openvla.teachers.preprocessing import INPUT_FORMATS, InputFormat
from rocket_openvla.teachers.vggt import (
    VGGT_1B,
    VGGT_TINY,
    VGGTAggregator,
    VGGTAggregatorConfig,
    VGGTTeacher,
    load_aggregator,
)

__all__ = [
    "INPUT_FORMATS",
    "VGGT_1B",
    "VGGT_TINY",
    "FrozenTeacher",
    "HFVisionTeacher",
    "InputFormat",
    "Teacher",
    "TeacherPooling",
    "VGGTAggregator",
    "VGGTAggregatorConfig",
    "VGGTTeacher",
    "load_aggregator",
]
