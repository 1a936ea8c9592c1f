"""The ROCKET objective, framework-free: config, projector bank, masked cosine loss, teacher-token pooling.

Nothing here imports from the rest of the package but the dependency-free `rocket_openvla.errors`.
"""

from rocket_openvla.align.config import RocketConfig
from rocket_openvla.align.layers import resolve_layers
from rocket_openvla.align.objective import RocketObjective, RocketOutput
from rocket_openvla.align.pooling import pool_teacher_tokens
from rocket_openvla.align.tokens import gather_tokens

__all__ = [
    "RocketConfig",
    "RocketObjective",
    "RocketOutput",
    "gather_tokens",
    "pool_teacher_tokens",
    "resolve_layers",
]
