"""Deployment: fold a run's LoRA adapter into its base weights (`merge_checkpoint`, `vla-scripts/merge_lora.py`),
load any policy for inference (`Policy`), serve it over HTTP (`vla-scripts/serve_policy.py`).

Names below load their module on first access, so importing `rocket_openvla.deploy.deploy_config` loads no model code.
"""

from __future__ import annotations

from rocket_openvla.lazy import lazy_attributes

_LAZY = {
    "DeployConfig": "rocket_openvla.deploy.deploy_config",
    "MergeConfig": "rocket_openvla.deploy.merge",
    "merge_checkpoint": "rocket_openvla.deploy.merge",
    "ObservationError": "rocket_openvla.deploy.policy",
    "Policy": "rocket_openvla.deploy.policy",
}

__all__ = list(_LAZY)

__getattr__ = lazy_attributes(__name__, _LAZY)
