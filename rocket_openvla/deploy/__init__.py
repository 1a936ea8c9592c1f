"""Deployment: fold a run's LoRA adapter into its base weights (`merge_checkpoint`, `vla-scripts/merge_lora.py`),
load any policy for inference (`Policy`), serve it over HTTP (`vla-scripts/serve_policy.py`)."""

from rocket_openvla.deploy.deploy_config import DeployConfig
from rocket_openvla.deploy.merge import MergeConfig, merge_checkpoint
from rocket_openvla.deploy.policy import ObservationError, Policy

__all__ = ["DeployConfig", "MergeConfig", "ObservationError", "Policy", "merge_checkpoint"]
