"""PI0's input processing for our samples, as transformers' `PI0Processor` lays them out, and the collator.

Per sample (raw: `images` uint8 `[V, H, W, 3]`, `instruction`, normalised `actions [chunk, A]` and `proprio [P]`):
    pixel_values          `[slots, 3, S, S]` in [-1, 1] (PI0's 0.5 / 0.5 normalisation); slots past the sample's V
                          cameras are zeros and absent
    pixel_attention_mask  `[slots]` bool, the first V slots present
    input_ids             `<image>` x (tokens per image x V present cameras), BOS, the instruction and "\\n"
    state                 `[max_state_dim]`, the normalised state zero-padded
    actions               `[chunk, max_action_dim]`, the normalised actions zero-padded
Only present cameras get image tokens: the r-th run of image tokens is the r-th present camera.
Images are square (the data pipeline resizes them), so there is no letterbox padding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedTokenizerBase

from rocket_openvla.backbones.images import unit_rgb
from rocket_openvla.backbones.pi0.configuration_pi0 import PI0PolicySpec


@dataclass(frozen=True)
class PI0Layout:
    """What the processor needs to know about the model (from its config)."""

    image_token_id: int
    image_size: int
    tokens_per_image: int
    max_state_dim: int
    max_action_dim: int
    chunk_size: int


class PI0InputProcessor:
    """Turns raw samples into PI0 training examples (module docstring) and instructions into inference inputs."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, spec: PI0PolicySpec, layout: PI0Layout) -> None:
        if tokenizer.bos_token_id is None or tokenizer.pad_token_id is None:
            raise ValueError(
                f"tokenizer needs bos and pad tokens, got bos={tokenizer.bos_token_id}, pad={tokenizer.pad_token_id}; "
                "PI0 uses PaliGemma's tokenizer"
            )
        self.tokenizer, self.spec, self.layout = tokenizer, spec, layout

    def prompt_input_ids(self, instruction: str, num_cameras: int) -> list[int]:
        """Image tokens of `num_cameras` present cameras, BOS, the instruction and "\\n" (PI0's prefix)."""
        text = self.tokenizer(instruction + "\n", add_special_tokens=False).input_ids
        return [self.layout.image_token_id] * (self.layout.tokens_per_image * num_cameras) + [
            self.tokenizer.bos_token_id, *text
        ]

    def camera_slots(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 `[V, H, W, 3]` -> `pixel_values [slots, 3, S, S]` in [-1, 1] and `pixel_attention_mask [slots]`."""
        frames = unit_rgb(images, self.layout.image_size) * 2 - 1
        slots = self.spec.camera_slots
        if frames.shape[0] > slots:
            raise ValueError(
                f"a sample has {frames.shape[0]} camera images but the policy has {slots} image slots "
                "(backbone.policy.camera_slots)"
            )
        pixel_values = frames.new_zeros(slots, *frames.shape[1:])
        pixel_values[: frames.shape[0]] = frames
        return pixel_values, torch.arange(slots) < frames.shape[0]

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        pixel_values, present = self.camera_slots(sample["images"])
        input_ids = self.prompt_input_ids(sample["instruction"], int(present.sum()))
        example = {
            "pixel_values": pixel_values,
            "pixel_attention_mask": present,
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
            "state": self.pad_state(torch.as_tensor(np.asarray(sample["proprio"], dtype=np.float32))),
            "actions": self._pad_actions(torch.as_tensor(np.asarray(sample["actions"], dtype=np.float32))),
            "dataset_name": sample["dataset_name"],
        }
        return example

    def pad_state(self, state: torch.Tensor) -> torch.Tensor:
        """`[..., proprio_dim]` normalised state -> `[..., max_state_dim]`, zero-padded."""
        if state.shape[-1] != self.spec.proprio_dim:
            raise ValueError(
                f"state has {state.shape[-1]} dimensions; the policy takes {self.spec.proprio_dim} "
                "(backbone.policy.proprio_dim)"
            )
        return F.pad(state.float(), (0, self.layout.max_state_dim - state.shape[-1]))

    def _pad_actions(self, actions: torch.Tensor) -> torch.Tensor:
        expected = (self.layout.chunk_size, self.spec.action_dim)
        if tuple(actions.shape) != expected:
            raise ValueError(
                f"actions have shape {tuple(actions.shape)}; the policy trains on [chunk, action_dim] = "
                f"{list(expected)} (data.num_actions_chunk and backbone.policy.chunk_size / action_dim)"
            )
        return F.pad(actions, (0, self.layout.max_action_dim - actions.shape[-1]))

    def save_pretrained(self, directory: str | Path) -> None:
        """The tokenizer files (the layout comes from the model's config.json, the rest from policy_config.json)."""
        self.tokenizer.save_pretrained(str(directory))

    def collator(self) -> PI0Collator:
        return PI0Collator(pad_token_id=self.tokenizer.pad_token_id)


@dataclass(frozen=True)
class PI0Collator:
    """Batches processor examples: right-pads `input_ids` with `pad_token_id`; `attention_mask` marks real tokens.

    Returns `pixel_values [B, slots, 3, S, S]`, `pixel_attention_mask [B, slots]` bool, `input_ids [B, L]`,
    `attention_mask [B, L]` (int64, 0 on padding), `state [B, max_state_dim]`, `actions [B, chunk, max_action_dim]`
    and `dataset_names` (list of B str).
    """

    pad_token_id: int

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        lengths = torch.tensor([len(example["input_ids"]) for example in examples])
        input_ids = pad_sequence([e["input_ids"] for e in examples], batch_first=True, padding_value=self.pad_token_id)
        return {
            "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
            "pixel_attention_mask": torch.stack([example["pixel_attention_mask"] for example in examples]),
            "input_ids": input_ids,
            "attention_mask": (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long(),
            "state": torch.stack([example["state"] for example in examples]),
            "actions": torch.stack([example["actions"] for example in examples]),
            "dataset_names": [example["dataset_name"] for example in examples],
        }
