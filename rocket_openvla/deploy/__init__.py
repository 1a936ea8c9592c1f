"""Deployment: fold a run's LoRA adapter into its base weights (`merge_checkpoint`, `vla-scripts/merge_lora.py`)."""

from rocket_openvla.deploy.merge import MergeConfig, merge_checkpoint

__all__ = ["MergeConfig", "merge_checkpoint"]
