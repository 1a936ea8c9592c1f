import json

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TVF
from PIL import Image

from rocket_openvla.backbones.openvla.processing_openvla import (
    PREPROCESSOR_CONFIG_NAME,
    PUBLISHED_DINOV2_MEAN,
    PUBLISHED_DINOV2_STD,
    SIGLIP_MEAN,
    SIGLIP_STD,
    ImageNormalization,
    OpenVLACollator,
    OpenVLAProcessor,
    images_to_pixel_values,
)
from rocket_openvla.backbones.openvla.prompting import IGNORE_INDEX, build_prompt
from rocket_openvla.backbones.openvla.tiny_tokenizer import build_tiny_tokenizer
from rocket_openvla.errors import ConfigError
from rocket_openvla.teachers.preprocessing import to_unit_images


def pixel_values_to_rgb(pixel_values: torch.Tensor, normalization=ImageNormalization()) -> torch.Tensor:
    """`[B, 6V, H, W]` -> `[B, V, 3, H, W]` in [0, 1]: the teacher's inversion of the DINOv2 half."""
    return to_unit_images(pixel_values, "openvla", num_cameras=pixel_values.shape[1] // 6,
                          pixel_normalization=(normalization.means[0], normalization.stds[0]))

CHUNK, ACTION_DIM, PROPRIO_DIM = 8, 7, 8


@pytest.fixture(scope="module")
def processor() -> OpenVLAProcessor:
    return OpenVLAProcessor(build_tiny_tokenizer())


def random_images(num_cameras: int, size: tuple[int, int] = (224, 224), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (num_cameras, *size, 3), dtype=np.uint8)


def raw_sample(instruction: str, seed: int = 0, with_proprio: bool = True) -> dict:
    rng = np.random.default_rng(seed)
    sample = {
        "images": random_images(2, seed=seed),
        "instruction": instruction,
        "actions": rng.uniform(-1, 1, (CHUNK, ACTION_DIM)).astype(np.float32),
        "dataset_name": f"dataset_{seed}",
    }
    if with_proprio:
        sample["proprio"] = rng.uniform(-1, 1, PROPRIO_DIM).astype(np.float32)
    return sample


def prismatic_transform(
    image: np.ndarray, dino_mean=PUBLISHED_DINOV2_MEAN, dino_std=PUBLISHED_DINOV2_STD
) -> torch.Tensor:
    """Prismatic's `apply_transform` (resize-naive dinosiglip): PIL bicubic resize, to_tensor, two normalisations."""
    pil = TVF.resize(Image.fromarray(image), [224, 224], interpolation=TVF.InterpolationMode.BICUBIC, antialias=True)
    tensor = TVF.to_tensor(pil)
    return torch.cat([TVF.normalize(tensor, dino_mean, dino_std), TVF.normalize(tensor, SIGLIP_MEAN, SIGLIP_STD)])


def test_pixel_values_equal_prismatic_transform_per_camera_in_order():
    images = random_images(2)
    pixel_values = images_to_pixel_values(images)
    expected = torch.cat([prismatic_transform(image) for image in images])  # primary [0:6], wrist [6:12]
    assert pixel_values.shape == (12, 224, 224) and pixel_values.dtype == torch.float32
    torch.testing.assert_close(pixel_values, expected, atol=0, rtol=0)


def test_default_normalisation_is_the_published_openvla_7b_one():
    """openvla-7b's preprocessor_config.json: ImageNet constants rounded to bfloat16 for DINOv2, 0.5 for SigLIP."""
    normalization = ImageNormalization()
    imagenet_mean, imagenet_std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.equal(torch.tensor(normalization.means[0]), imagenet_mean.bfloat16().float())
    assert torch.equal(torch.tensor(normalization.stds[0]), imagenet_std.bfloat16().float())
    assert normalization.means[1] == normalization.stds[1] == (0.5, 0.5, 0.5)


def test_preprocessor_config_round_trip_and_precedence(tmp_path):
    custom = ImageNormalization(((0.4, 0.5, 0.6), (0.1, 0.2, 0.3)), ((0.2, 0.25, 0.3), (0.6, 0.7, 0.8)))
    custom.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / PREPROCESSOR_CONFIG_NAME).read_text())
    assert saved["means"] == [[0.4, 0.5, 0.6], [0.1, 0.2, 0.3]] and "auto_map" not in saved
    assert ImageNormalization.from_pretrained(tmp_path) == custom
    assert ImageNormalization.from_pretrained(tmp_path / "missing") is None
    # OpenVLA's image processor applies `tvf_normalize_params` when the file has them, over `means` / `stds`.
    applied = {**saved, "tvf_normalize_params": [{"mean": [0.5] * 3, "std": [0.5] * 3, "inplace": False}] * 2}
    assert ImageNormalization.from_preprocessor_config(applied).means == ((0.5,) * 3, (0.5,) * 3)
    only_means = {key: value for key, value in saved.items() if key != "tvf_normalize_params"}
    assert ImageNormalization.from_preprocessor_config(only_means) == custom
    with pytest.raises(ConfigError, match="2"):
        ImageNormalization.from_preprocessor_config({"means": [[0.5] * 3], "stds": [[0.5] * 3]})


def test_processor_applies_and_saves_its_normalisation(processor, tmp_path):
    custom = ImageNormalization(((0.4, 0.5, 0.6), (0.1, 0.2, 0.3)), ((0.2, 0.25, 0.3), (0.6, 0.7, 0.8)))
    images = random_images(2, seed=4)
    pixel_values = images_to_pixel_values(images, normalization=custom)
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    for tower in range(2):
        mean, std = torch.tensor(custom.means[tower]).view(3, 1, 1), torch.tensor(custom.stds[tower]).view(3, 1, 1)
        half = pixel_values.unflatten(0, (2, 6))[:, 3 * tower:3 * tower + 3]
        torch.testing.assert_close(half * std + mean, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(pixel_values_to_rgb(pixel_values[None], custom)[0], expected, atol=1e-6, rtol=0)
    OpenVLAProcessor(processor.tokenizer, normalization=custom).save_pretrained(tmp_path)
    assert ImageNormalization.from_pretrained(tmp_path) == custom and (tmp_path / "tokenizer.json").is_file()


def test_resize_follows_pil_bicubic_for_other_sizes():
    image = random_images(1, size=(256, 320), seed=3)
    rgb = pixel_values_to_rgb(images_to_pixel_values(image)[None])[0, 0]
    pil = np.array(Image.fromarray(image[0]).resize((224, 224), Image.BICUBIC))
    pil_rgb = torch.from_numpy(pil).permute(2, 0, 1).float() / 255
    assert (rgb - pil_rgb).abs().max() <= 2 / 255 + 1e-6


def test_rgb_round_trip_through_both_normalisations():
    images = random_images(3, seed=1)
    pixel_values = images_to_pixel_values(images)[None]  # [1, 18, 224, 224]
    expected = torch.from_numpy(images).permute(0, 3, 1, 2).float()[None] / 255
    torch.testing.assert_close(pixel_values_to_rgb(pixel_values), expected, atol=1e-6, rtol=0)
    # The SigLIP half of each camera encodes the same pixels.
    siglip = pixel_values.unflatten(1, (3, 6))[:, :, 3:] * 0.5 + 0.5
    torch.testing.assert_close(siglip, expected, atol=1e-6, rtol=0)


def test_flipped_and_read_only_numpy_images_are_accepted():
    images = random_images(1)
    flipped = images[:, ::-1, ::-1]  # LIBERO's 180-degree rotation is a negative-stride view
    torch.testing.assert_close(images_to_pixel_values(flipped), images_to_pixel_values(flipped.copy()))
    read_only = images.copy()
    read_only.flags.writeable = False
    torch.testing.assert_close(images_to_pixel_values(read_only), images_to_pixel_values(images))


def test_images_must_be_uint8_channels_last():
    with pytest.raises(ValueError, match=r"uint8 \[num_cameras, H, W, 3\]"):
        images_to_pixel_values(np.zeros((2, 224, 224, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"uint8 \[num_cameras, H, W, 3\]"):
        images_to_pixel_values(np.zeros((2, 3, 224, 224), dtype=np.uint8))


def test_training_example_layout(processor):
    sample = raw_sample("Open the Top Drawer")
    example = processor(sample)

    tokenizer = processor.tokenizer
    prompt_ids = tokenizer(build_prompt(sample["instruction"])).input_ids
    action_ids = processor.action_tokenizer.encode(sample["actions"]).reshape(-1).tolist()
    word_boundary = tokenizer.convert_tokens_to_ids("▁")
    assert prompt_ids[0] == tokenizer.bos_token_id
    assert example["input_ids"].tolist() == [*prompt_ids, word_boundary, *action_ids, tokenizer.eos_token_id]
    supervised = example["labels"] != IGNORE_INDEX
    assert supervised.sum() == CHUNK * ACTION_DIM + 1
    assert torch.equal(example["labels"][supervised], example["input_ids"][-(CHUNK * ACTION_DIM + 1) :])
    torch.testing.assert_close(example["pixel_values"], images_to_pixel_values(sample["images"]))
    assert torch.equal(example["actions"], torch.from_numpy(sample["actions"]))
    assert torch.equal(example["proprio"], torch.from_numpy(sample["proprio"]))
    assert example["dataset_name"] == "dataset_0"


def test_collate_pads_right_and_masks_padding(processor):
    examples = [processor(raw_sample("put the bowl on the plate", 0)), processor(raw_sample("turn on the stove", 1))]
    lengths = [len(example["input_ids"]) for example in examples]
    assert lengths[0] != lengths[1]

    batch = processor.collator()(examples)

    longest = max(lengths)
    assert batch["pixel_values"].shape == (2, 12, 224, 224)
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape == (2, longest)
    assert batch["attention_mask"].dtype == torch.bool
    assert batch["actions"].shape == (2, CHUNK, ACTION_DIM) and batch["actions"].dtype == torch.float32
    assert batch["proprio"].shape == (2, PROPRIO_DIM)
    assert batch["dataset_names"] == ["dataset_0", "dataset_1"]
    for row, (example, length) in enumerate(zip(examples, lengths)):
        assert torch.equal(batch["input_ids"][row, :length], example["input_ids"])
        assert torch.equal(batch["labels"][row, :length], example["labels"])
        assert (batch["input_ids"][row, length:] == 32000).all()
        assert (batch["labels"][row, length:] == IGNORE_INDEX).all()
        assert batch["attention_mask"][row].tolist() == [True] * length + [False] * (longest - length)


def test_collate_without_proprio_and_errors(processor):
    with_proprio = processor(raw_sample("pick up the mug", 0))
    without = processor(raw_sample("pick up the mug", 1, with_proprio=False))
    assert "proprio" not in processor.collator()([without, without])
    with pytest.raises(ValueError, match="some examples carry 'proprio'"):
        processor.collator()([with_proprio, without])
    with pytest.raises(ValueError, match="more than max_length=20"):
        OpenVLACollator(max_length=20)([with_proprio])


def test_processor_requires_a_bos_adding_tokenizer():
    tokenizer = build_tiny_tokenizer()
    tokenizer.add_bos_token = False
    with pytest.raises(ValueError, match="add_bos_token=True"):
        OpenVLAProcessor(tokenizer)
