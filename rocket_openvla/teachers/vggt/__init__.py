"""Clean-room VGGT aggregator (loads the official VGGT-1B ``model.pt``) and the VGGT teacher."""

from rocket_openvla.teachers.vggt.aggregator import VGGTAggregator
from rocket_openvla.teachers.vggt.checkpoint import load_aggregator, read_state_dict
from rocket_openvla.teachers.vggt.config import VGGT_1B, VGGT_TINY, VGGTAggregatorConfig
from rocket_openvla.teachers.vggt.teacher import VGGTTeacher

__all__ = [
    "VGGT_1B",
    "VGGT_TINY",
    "VGGTAggregator",
    "VGGTAggregatorConfig",
    "VGGTTeacher",
    "load_aggregator",
    "read_state_dict",
]
