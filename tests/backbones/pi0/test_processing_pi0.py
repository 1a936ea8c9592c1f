"""Our samples -> PI0 inputs: PI0's prefix layout, camera slots, [-1, 1] pixels, padded state and actions."""

import pytest
import torch

from .helpers import INSTRUCTION, raw_sample, tiny_adapter


@pytest.fixture(scope="module")
def processor():
    return tiny_adapter().processor


def test_prefix_is_the_present_cameras_image_tokens_then_bos_prompt_and_newline(processor):
    example = processor(raw_sample(2))
    layout, tokenizer = processor.layout, processor.tokenizer
    prompt = tokenizer(INSTRUCTION + "\n", add_special_tokens=False).input_ids
    expected = [layout.image_token_id] * (2 * layout.tokens_per_image) + [tokenizer.bos_token_id, *prompt]
    assert example["input_ids"].tolist() == expected
    assert layout.tokens_per_image == 256 and example["pixel_attention_mask"].tolist() == [True, True, False]


def test_pixels_are_in_minus_one_to_one_and_absent_slots_are_zero(processor):
    sample = raw_sample(2, seed=3)
    pixel_values = processor(sample)["pixel_values"]
    expected = torch.from_numpy(sample["images"]).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert pixel_values.shape == (3, 3, 224, 224)
    torch.testing.assert_close(pixel_values[:2], expected, atol=1e-6, rtol=0)
    assert not pixel_values[2].any()


def test_state_and_actions_are_zero_padded_to_the_model_dims(processor):
    sample = raw_sample(2)
    example = processor(sample)
    assert example["state"].shape == (32,) and example["actions"].shape == (8, 32)
    torch.testing.assert_close(example["state"][:8], torch.from_numpy(sample["proprio"]))
    torch.testing.assert_close(example["actions"][:, :7], torch.from_numpy(sample["actions"]))
    assert not example["state"][8:].any() and not example["actions"][:, 7:].any()


def test_collator_right_pads_prompts_of_different_length(processor):
    batch = processor.collator()([processor(raw_sample(3)), processor(raw_sample(1))])
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert lengths == [3 * 256 + 23, 256 + 23] and batch["input_ids"].shape == (2, 3 * 256 + 23)
    assert (batch["input_ids"][1, lengths[1]:] == processor.tokenizer.pad_token_id).all()
    assert batch["pixel_attention_mask"].tolist() == [[True, True, True], [True, False, False]]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(images=raw_sample(4)["images"]), r"4 camera images but the policy has 3 image slots"),
        (lambda s: s.update(proprio=s["proprio"][:6]), r"state has 6 dimensions; the policy takes 8"),
        (lambda s: s.update(actions=s["actions"][:4]), r"actions have shape \(4, 7\); .* \[8, 7\]"),
    ],
)
def test_bad_samples_name_the_setting(processor, change, message):
    sample = raw_sample(2)
    change(sample)
    with pytest.raises(ValueError, match=message):
        processor(sample)
