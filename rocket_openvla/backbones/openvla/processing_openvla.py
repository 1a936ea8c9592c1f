"""OpenVLA's input processing: the fused DINOv2 + SigLIP image transform, the training token layout and the collator.

Image transform (Prismatic `dinosiglip-vit-so-224px`, "resize-naive"): each camera image is resized to 224 x 224
(bicubic, as PIL resizes: antialiased), scaled to [0, 1] and normalised twice, once per tower, with the mean/std of
the checkpoint's `preprocessor_config.json` (`ImageNormalization`). The published openvla/openvla-7b file holds the
ImageNet constants rounded to bfloat16 for DINOv2 (mean [0.484375, 0.455078125, 0.40625], std [0.228515625,
0.2236328125, 0.224609375]) and 0.5 / 0.5 for SigLIP; OpenVLA-OFT and the ROCKET release train and evaluate with
those, so they are the default. The 6 channels of each camera are [DINOv2 RGB | SigLIP RGB]; cameras are
concatenated on the channel axis in the order given (OpenVLA: primary, then wrist), giving
`pixel_values [6V, 224, 224]`.

The data pipeline already resizes images to 224 (as OpenVLA's RLDS pipeline does), and OpenVLA's PIL resize to the
same size is the identity, so the resize here is skipped for 224-pixel images. Other sizes use torch's antialiased
bicubic resize of uint8 images, which follows PIL's filter (it agrees with PIL to within 1-2 grey levels); it runs on
CPU tensors, where the data pipeline works.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedTokenizerBase

from rocket_openvla.backbones.images import unit_rgb
from rocket_openvla.backbones.openvla.action_tokenizer import ActionTokenizer
from rocket_openvla.backbones.openvla.oft_format import PRISMATIC_PROCESSOR_CLASS, write_portable_tokenizer_files
from rocket_openvla.backbones.openvla.prompting import (
    ACTION_PREFIX_TOKEN,
    IGNORE_INDEX,
    build_prompt,
    build_training_ids,
)
from rocket_openvla.errors import ConfigError
from rocket_openvla.files import write_text

IMAGE_SIZE = 224
PREPROCESSOR_CONFIG_NAME = "preprocessor_config.json"
# openvla/openvla-7b's preprocessor_config.json: ImageNet mean/std rounded to bfloat16 (DINOv2), 0.5 / 0.5 (SigLIP).
PUBLISHED_DINOV2_MEAN = (0.484375, 0.455078125, 0.40625)
PUBLISHED_DINOV2_STD = (0.228515625, 0.2236328125, 0.224609375)
SIGLIP_MEAN, SIGLIP_STD = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
DEFAULT_PAD_TOKEN_ID = 32000
DEFAULT_MAX_LENGTH = 2048  # Llama-2's context, OpenVLA's `llm_max_length`


RGB = tuple[float, float, float]


@dataclass(frozen=True)
class ImageNormalization:
    """Per-tower `(x - mean) / std` of the fused transform: `means[0]`/`stds[0]` DINOv2, `means[1]`/`stds[1]` SigLIP.

    Read from and written to `preprocessor_config.json` in the schema of OpenVLA's Prismatic image processor. That
    processor applies the file's `tvf_normalize_params` when present (they override what it derives from `means` /
    `stds`), so those win here too. The file written is complete for OpenVLA-OFT's `AutoProcessor` (`oft_format`).
    """

    means: tuple[RGB, RGB] = (PUBLISHED_DINOV2_MEAN, SIGLIP_MEAN)
    stds: tuple[RGB, RGB] = (PUBLISHED_DINOV2_STD, SIGLIP_STD)

    def __post_init__(self) -> None:
        means = tuple(tuple(float(v) for v in mean) for mean in self.means)
        stds = tuple(tuple(float(v) for v in std) for std in self.stds)
        if [len(m) for m in means] != [3, 3] or [len(s) for s in stds] != [3, 3]:
            raise ConfigError(
                f"image normalisation means={self.means} stds={self.stds}: "
                "give one RGB triple per tower [DINOv2, SigLIP]"
            )
        if min(min(std) for std in stds) <= 0:
            raise ConfigError(f"image normalisation stds={self.stds} must be positive")
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "stds", stds)

    @classmethod
    def from_preprocessor_config(
        cls, values: Mapping[str, Any], source: str = PREPROCESSOR_CONFIG_NAME
    ) -> ImageNormalization:
        """The normalisation a Prismatic `preprocessor_config.json` applies (see the class docstring)."""
        params = values.get("tvf_normalize_params")
        if params:
            means, stds = [p["mean"] for p in params], [p["std"] for p in params]
        elif "means" in values and "stds" in values:
            means, stds = values["means"], values["stds"]
        else:
            raise ConfigError(
                f"{source} has neither tvf_normalize_params nor means/stds; it is not an OpenVLA processor config"
            )
        if len(means) != 2 or len(stds) != 2:
            raise ConfigError(
                f"{source} normalises {len(means)} vision tower(s); the fused DINOv2 + SigLIP backbone has 2"
            )
        return cls(tuple(means), tuple(stds))

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> ImageNormalization | None:
        """The normalisation of `directory/preprocessor_config.json`, or None when the directory has no such file."""
        path = Path(directory) / PREPROCESSOR_CONFIG_NAME
        if not path.is_file():
            return None
        return cls.from_preprocessor_config(json.loads(path.read_text()), source=str(path))

    def to_preprocessor_config(self, image_size: int = IMAGE_SIZE) -> dict[str, Any]:
        """`preprocessor_config.json` content in the Prismatic schema (no `auto_map`: nothing to execute; OFT registers
        the classes `processor_class` and `image_processor_type` name)."""
        return {
            "processor_class": PRISMATIC_PROCESSOR_CLASS,
            "image_processor_type": "PrismaticImageProcessor",
            "image_resize_strategy": "resize-naive",
            "use_fused_vision_backbone": True,
            "input_sizes": [[3, image_size, image_size]] * 2,
            "interpolations": ["bicubic", "bicubic"],
            "means": [list(mean) for mean in self.means],
            "stds": [list(std) for std in self.stds],
            "tvf_normalize_params": [
                {"mean": list(mean), "std": list(std), "inplace": False} for mean, std in zip(self.means, self.stds)
            ],
        }

    def save_pretrained(self, directory: str | Path, image_size: int = IMAGE_SIZE) -> None:
        write_text(
            Path(directory) / PREPROCESSOR_CONFIG_NAME, json.dumps(self.to_preprocessor_config(image_size), indent=2)
        )


def _channel_stats(values: RGB, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device).view(3, 1, 1)


def images_to_pixel_values(
    images: np.ndarray | torch.Tensor,
    image_size: int = IMAGE_SIZE,
    normalization: ImageNormalization = ImageNormalization(),
) -> torch.Tensor:
    """Camera images uint8 `[V, H, W, 3]` -> float32 `pixel_values [6V, image_size, image_size]`."""
    rgb = unit_rgb(images, image_size)  # [V, 3, S, S]
    towers = [
        (rgb - _channel_stats(mean, rgb)) / _channel_stats(std, rgb)
        for mean, std in zip(normalization.means, normalization.stds)
    ]
    return torch.cat(towers, dim=1).flatten(0, 1)


class OpenVLAProcessor:
    """Turns raw samples into OpenVLA training examples and instructions into inference prompts.

    Raw sample (from the data pipeline): `images` uint8 `[V, H, W, 3]` (primary, then wrist), `instruction` str,
    `actions` float32 `[chunk, action_dim]` and `proprio` float32 `[proprio_dim]` (both normalised; proprio
    optional), `dataset_name` str.
    """

    def __init__(
        self,
        tokenizer: PreTrainedTokenizerBase,
        image_size: int = IMAGE_SIZE,
        n_action_bins: int = 256,
        normalization: ImageNormalization = ImageNormalization(),
    ) -> None:
        self.tokenizer, self.image_size, self.normalization = tokenizer, image_size, normalization
        self.action_tokenizer = ActionTokenizer.from_tokenizer(tokenizer, n_action_bins)
        self.action_prefix_id = tokenizer.convert_tokens_to_ids(ACTION_PREFIX_TOKEN)
        if self.action_prefix_id in (None, tokenizer.unk_token_id):
            raise ValueError(f"tokenizer has no {ACTION_PREFIX_TOKEN!r} token; OpenVLA needs a Llama-style tokenizer")
        if tokenizer.eos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(
                f"tokenizer needs eos and pad tokens, got eos={tokenizer.eos_token_id}, pad={tokenizer.pad_token_id}; "
                "OpenVLA uses </s> (2) and <PAD> (32000)"
            )
        if tokenizer("a").input_ids[:1] != [tokenizer.bos_token_id]:
            raise ValueError("tokenizer does not prepend BOS; load it with add_bos_token=True (OpenVLA's setting)")

    def pixel_values(self, images: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Camera images uint8 `[V, H, W, 3]` -> `pixel_values [6V, S, S]` with this processor's normalisation."""
        return images_to_pixel_values(images, self.image_size, self.normalization)

    def prompt_input_ids(self, instruction: str) -> list[int]:
        """BOS + the tokenised prompt ending at "Out:" (what OpenVLA's `predict_action` receives)."""
        return self.tokenizer(build_prompt(instruction), add_special_tokens=True).input_ids

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        """One training example: `pixel_values [6V, S, S]`, `input_ids [T]`, `labels [T]`, `actions [chunk, A]`,
        `proprio [P]` (if given) and `dataset_name`."""
        actions = torch.as_tensor(np.asarray(sample["actions"], dtype=np.float32))
        if actions.dim() != 2:
            raise ValueError(f"actions must be [chunk, action_dim], got shape {tuple(actions.shape)}")
        action_token_ids = self.action_tokenizer.encode(actions).reshape(-1).tolist()
        input_ids, labels = build_training_ids(
            self.prompt_input_ids(sample["instruction"]),
            action_token_ids,
            self.action_prefix_id,
            self.tokenizer.eos_token_id,
        )
        example = {
            "pixel_values": self.pixel_values(sample["images"]),
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "labels": torch.tensor(labels, dtype=torch.long),
            "actions": actions,
            "dataset_name": sample["dataset_name"],
        }
        if sample.get("proprio") is not None:
            example["proprio"] = torch.as_tensor(np.asarray(sample["proprio"], dtype=np.float32))
        return example

    def save_pretrained(self, directory: str | Path) -> None:
        """The tokenizer files (readable by transformers 4.40 / tokenizers 0.19 too, as OpenVLA-OFT's evaluation needs)
        and `preprocessor_config.json` (the image normalisation the policy was trained with)."""
        self.tokenizer.save_pretrained(str(directory))
        write_portable_tokenizer_files(directory)
        self.normalization.save_pretrained(directory, self.image_size)

    def collator(self, max_length: int = DEFAULT_MAX_LENGTH) -> OpenVLACollator:
        return OpenVLACollator(pad_token_id=self.tokenizer.pad_token_id, max_length=max_length)


@dataclass(frozen=True)
class OpenVLACollator:
    """Batches processor examples: right-pads `input_ids` with `pad_token_id` and `labels` with `IGNORE_INDEX`.

    Returns `pixel_values [B, 6V, S, S]` float32, `input_ids [B, T]` int64, `attention_mask [B, T]` bool (False on
    padding), `labels [B, T]` int64, `actions [B, chunk, A]` float32, `proprio [B, P]` float32 (when the examples
    carry it) and `dataset_names` (list of B str). Sequences longer than `max_length` are an error (OpenVLA
    silently truncates them, cutting off action labels).
    """

    pad_token_id: int = DEFAULT_PAD_TOKEN_ID
    max_length: int = DEFAULT_MAX_LENGTH

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        lengths = torch.tensor([len(example["input_ids"]) for example in examples])
        if int(lengths.max()) > self.max_length:
            raise ValueError(
                f"a sample has {int(lengths.max())} tokens, more than max_length={self.max_length}; "
                "shorten the instruction or raise max_length"
            )
        with_proprio = ["proprio" in example for example in examples]
        if any(with_proprio) and not all(with_proprio):
            raise ValueError("some examples carry 'proprio' and some do not; a batch needs it in all or none")
        input_ids = pad_sequence([e["input_ids"] for e in examples], batch_first=True, padding_value=self.pad_token_id)
        batch = {
            "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
            "input_ids": input_ids,
            "attention_mask": torch.arange(input_ids.shape[1])[None, :] < lengths[:, None],
            "labels": pad_sequence([e["labels"] for e in examples], batch_first=True, padding_value=IGNORE_INDEX),
            "actions": torch.stack([example["actions"] for example in examples]),
            "dataset_names": [example["dataset_name"] for example in examples],
        }
        if all(with_proprio):
            batch["proprio"] = torch.stack([example["proprio"] for example in examples])
        return batch
