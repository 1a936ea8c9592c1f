"""A synthetic LIBERO-format RLDS dataset for the quickstart and the tests.

Rendered tabletop scenes (coloured blocks and balls at known 3D positions, a primary and a wrist camera),
scripted pick-up actions and instructions naming the target; written by a real tfds builder.
"""

from rocket_openvla.data.synthetic.builder import (
    SYNTHETIC_DATASET_NAME,
    SyntheticLiberoBuilder,
    generate_synthetic_dataset,
    libero_features,
)

__all__ = ["SYNTHETIC_DATASET_NAME", "SyntheticLiberoBuilder", "generate_synthetic_dataset", "libero_features"]
