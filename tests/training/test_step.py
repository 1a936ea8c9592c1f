"""TrainStep composed with the real OpenVLA adapter: the student tokens it aligns are `output_hidden_states`' image
tokens, and the teacher sees exactly the student's camera images, in the same order."""

import numpy as np
import pytest
import torch

from rocket_openvla.align import RocketConfig, RocketObjective
from rocket_openvla.backbones.openvla.backbone_config import OpenVLABackboneConfig
from rocket_openvla.backbones.openvla.processing_openvla import ImageNormalization
from rocket_openvla.teachers.preprocessing import to_unit_images
from rocket_openvla.teachers.registry import RandomVGGTConfig, StudentView
from rocket_openvla.training.step import TrainStep
from tests.backbones.openvla.helpers import reference_hidden_states

TEACHER_DIM = 8
STUDENT_LAYERS = [0, 1, 2]  # embeddings, after block 0, after the final norm of the 2-block tiny Llama


def raw_samples(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [
        {
            "images": rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8),  # primary, wrist
            "instruction": "pick up the red block",
            "actions": rng.uniform(-1, 1, (8, 7)).astype(np.float32),
            "proprio": rng.uniform(-1, 1, 8).astype(np.float32),
            "dataset_name": "synthetic",
        }
        for _ in range(count)
    ]


def collated_batch(adapter, samples: list[dict]) -> dict:
    processor = adapter.processor
    return processor.collator()([processor(sample) for sample in samples])


@pytest.mark.parametrize("shift", [0, 1])
def test_aligned_student_tokens_are_the_hidden_states_at_the_image_positions(shift):
    torch.manual_seed(0)
    adapter = OpenVLABackboneConfig().build()
    adapter.apply_lora(rank=2, alpha=4, init=False)
    rocket = RocketConfig(student_layers=STUDENT_LAYERS, teacher_layers=[0, 1, 2], student_token_shift=shift,
                          hidden_dim=16)
    objective = RocketObjective(rocket, adapter.hidden_size, TEACHER_DIM)
    step = TrainStep(adapter, objective, rocket, STUDENT_LAYERS).eval()
    aligned = {}
    objective.register_forward_pre_hook(lambda module, args: aligned.update(student=args[0]))
    batch = collated_batch(adapter, raw_samples(2))
    start, count = 1, 2 * 256  # after BOS, both cameras' 16 x 16 patches
    targets = [torch.randn(2, count, TEACHER_DIM) for _ in STUDENT_LAYERS]

    with torch.no_grad():
        output = step(batch, targets)
        reference = reference_hidden_states(adapter, batch)

    assert len(aligned["student"]) == len(STUDENT_LAYERS) and torch.isfinite(output.loss)
    for pair, layer in enumerate(STUDENT_LAYERS):
        expected = reference.hidden_states[layer][:, start + shift:start + shift + count]
        assert torch.equal(aligned["student"][pair], expected), (shift, layer)


def test_the_teacher_sees_the_students_cameras_in_order_with_the_students_normalisation(tmp_path):
    custom = ImageNormalization(((0.4, 0.5, 0.6), (0.1, 0.2, 0.3)), ((0.2, 0.25, 0.3), (0.6, 0.7, 0.8)))
    base = OpenVLABackboneConfig().build()
    base.policy.vla.save_pretrained(tmp_path)
    base.processor.tokenizer.save_pretrained(str(tmp_path))
    custom.save_pretrained(tmp_path)
    adapter = OpenVLABackboneConfig(pretrained=str(tmp_path)).build()
    view = StudentView(adapter.camera_grids, adapter.num_images, adapter.teacher_input_format,
                       adapter.pixel_normalization)
    teacher = RandomVGGTConfig(depth=1).build([0], view, RocketConfig(student_layers=[1], teacher_layers=[0]))
    samples = raw_samples(2, seed=1)

    frames = to_unit_images(collated_batch(adapter, samples)["pixel_values"], teacher.input_format,
                            teacher.num_cameras, teacher.pixel_normalization)

    expected = torch.stack([torch.from_numpy(sample["images"]) for sample in samples]).permute(0, 1, 4, 2, 3) / 255
    assert teacher.pixel_normalization == (custom.means[0], custom.stds[0])
    torch.testing.assert_close(frames, expected, atol=1e-6, rtol=0)
