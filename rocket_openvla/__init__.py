"""rocket_openvla: ROCKET multi-layer representation alignment for OpenVLA-style VLA finetuning."""

__version__ = "0.1.0"
