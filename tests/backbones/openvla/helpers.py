"""Helpers shared by the OpenVLA tests and the training tests that run the real OpenVLA adapter."""

from rocket_openvla.backbones.openvla.adapter import OpenVLAAdapter
from rocket_openvla.backbones.openvla.modeling_openvla import OpenVLAOutput


def reference_hidden_states(adapter: OpenVLAAdapter, batch: dict) -> OpenVLAOutput:
    """`output_hidden_states=True` on the VLA, with the inputs the policy builds (proprio token, zeroed actions)."""
    policy = adapter.policy
    return policy.vla(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], pixel_values=batch["pixel_values"],
        labels=batch["labels"], extra_tokens=policy.proprio_projector(batch["proprio"]).unsqueeze(1),
        output_hidden_states=True, compute_logits=False,
    )
