"""Training-free layer selection and the paper's analysis tools: CKA, gradient conflict, projector similarity.

Index conventions: student layer k = Hugging Face `hidden_states[k]`; teacher layer = teacher block index (VGGT
aggregator block). `balanced_layers` alone returns 0-based block indices, as the release's function.

Importing the package loads torch and numpy only; the tools (which build models and data) load on first use.
"""

from rocket_openvla.lazy import lazy_attributes
from rocket_openvla.profiling.cka import StreamingCKA, linear_cka
from rocket_openvla.profiling.matching import hungarian_matching, monotone_matching
from rocket_openvla.profiling.selection import LayerPairs, balanced_layers, e2m_last_pairs, uniform_pairs

_LAZY = {
    "ProfileConfig": "rocket_openvla.profiling.config",
    "SelectLayersConfig": "rocket_openvla.profiling.config",
    "profile_alignment": "rocket_openvla.profiling.runner",
    "select_layers": "rocket_openvla.profiling.runner",
}

__all__ = [
    "LayerPairs",
    "StreamingCKA",
    "balanced_layers",
    "e2m_last_pairs",
    "hungarian_matching",
    "linear_cka",
    "monotone_matching",
    "uniform_pairs",
    *_LAZY,
]

__getattr__ = lazy_attributes(__name__, _LAZY)
