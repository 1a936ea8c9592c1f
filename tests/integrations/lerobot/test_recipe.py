"""The README's recipe for lerobot's own training script (ROCKET added around `policy.forward(batch)`), run as written
on a tiny lerobot pi0 with a tiny random VGGT standing in for VGGT-1B."""

import pytest

from .helpers import SKIP_REASON, batch_of, tiny_options

pytest.importorskip("lerobot", reason=SKIP_REASON)

import torch  # noqa: E402

from rocket_openvla.teachers.registry import RandomVGGTConfig  # noqa: E402


def test_the_readme_recipe_trains_the_projector_and_the_vlm():
    adapter = tiny_options("pi0", gradient_checkpointing=True).build()
    policy, batch = adapter.lerobot_policy, batch_of(adapter)  # what lerobot's script has: its policy and a batch
    optimizer = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-4)
    device = "cpu"

    # --- the recipe (README: "lerobot policies"), with RandomVGGTConfig() for VGGTCheckpointConfig(checkpoint=...) ---
    from rocket_openvla.align import RocketConfig, RocketObjective, gather_tokens
    from rocket_openvla.capture import ResidualCapture
    from rocket_openvla.integrations.lerobot import layout
    from rocket_openvla.teachers.registry import StudentView

    rocket = RocketConfig(student_layers=[1, 2, 3, -1], teacher_layers=[0, 1, 2, -1], coeff=0.5)
    vggt = RandomVGGTConfig()
    students, teachers = rocket.resolve_pairs(len(layout.language_model(policy).layers) + 1, vggt.num_layers())
    slots = len(policy.config.image_features)
    teacher = vggt.build(teachers, StudentView((layout.camera_grid(policy),) * slots, slots, "pm1"), rocket).to(device)
    objective = RocketObjective(rocket, layout.language_model(policy).config.hidden_size, teacher.feature_dim)
    optimizer.add_param_group({"params": list(objective.to(device).parameters())})
    capture = ResidualCapture(layout.capture_points(policy), students)
    capture.attach()
    # each training step:
    capture.reset()
    loss, output_dict = policy.forward(batch)
    states = capture.collect()
    positions, mask = layout.image_tokens(policy, batch)
    with torch.no_grad():
        targets = teacher(layout.student_images(policy, batch)[0])
    aligned = objective([gather_tokens(states[k], positions) for k in students], targets, mask)
    loss = loss + rocket.coeff * aligned.loss
    # --- end of the recipe ---

    loss.backward()
    assert torch.isfinite(loss) and aligned.loss > 0
    assert all(p.grad is not None for p in objective.parameters())
    first_block = layout.language_model(policy).layers[0].mlp.up_proj.weight
    assert first_block.grad is not None and first_block.grad.abs().sum() > 0
    optimizer.step()
    capture.remove()
