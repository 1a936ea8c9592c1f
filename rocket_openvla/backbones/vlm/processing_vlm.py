"""Our samples -> a transformers VLM's inputs + OFT-style action slots, and the collator.

Per sample (raw: `images` uint8 `[V, H, W, 3]`, `instruction`, normalised `actions [chunk, A]`, `proprio [P]`):
    input_ids        the family's processor's prompt (the V cameras' image tokens in camera order, the
                     instruction), then one proprio slot (when used) and chunk x action_dim action-query slots; the
                     slots hold a placeholder id whose embedding the policy replaces
    <token inputs>   the family's other per-token inputs, 0 on the slots
    <vision inputs>  what the family's processor made of the cameras (each resized to `image_sizes[i]` first,
                     when given)
    teacher_images   `[V, 3, S, S]` in [0, 1]: the cameras as the data pipeline delivered them, for the teacher
    state, actions   the normalised state `[P]` and actions `[chunk, A]` (absent at inference)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

from rocket_openvla.backbones.images import unit_rgb
from rocket_openvla.backbones.vlm.configuration_vlm import VLMPolicySpec
from rocket_openvla.backbones.vlm.family import VLMFamily
from rocket_openvla.files import make_readable


class VLMInputProcessor:
    """Turns raw samples into examples of a VLM policy (module docstring); `collator()` batches them."""

    def __init__(
        self, processor: Any, family: VLMFamily, spec: VLMPolicySpec, image_token_id: int,
        tokens_per_camera: Sequence[int], image_sizes: Sequence[int] | None = None,
    ) -> None:
        self.processor, self.family, self.spec = processor, family, spec
        self.image_sizes = None if image_sizes is None else list(image_sizes)
        self.image_token_id, self.tokens_per_camera = image_token_id, list(tokens_per_camera)
        tokenizer = processor.tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        # Any ordinary token serves as the placeholder of the proprio / action slots: their embedding is replaced.
        self.slot_token_id = self.pad_token_id
        if image_token_id in (None, tokenizer.unk_token_id) or image_token_id == self.slot_token_id:
            raise ValueError(
                f"the tokenizer has no image token of its own (image_token_id={image_token_id}); use the processor "
                "that belongs to the checkpoint (--backbone.processor)"
            )

    @property
    def num_slots(self) -> int:
        """Proprio + action-query slots appended after the prompt."""
        return int(self.spec.use_proprio) + self.spec.num_action_tokens

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        images = np.asarray(sample["images"])
        if images.ndim != 4 or images.shape[0] != self.spec.num_images:
            raise ValueError(
                f"a sample has images of shape {images.shape}; the policy takes {self.spec.num_images} camera images "
                "[V, H, W, 3] (backbone.policy.num_images)"
            )
        encoded = self.family.encode(self.processor, self._resized(images), sample["instruction"])
        input_ids = encoded.pop("input_ids")
        found = int((input_ids == self.image_token_id).sum())
        if found != sum(self.tokens_per_camera):
            raise ValueError(
                f"the processor wrote {found} image tokens for {self.spec.num_images} cameras but the model expects "
                f"{self.tokens_per_camera} per camera; check backbone.policy.image_sizes and the processor's image size"
            )
        slots = torch.full((self.num_slots,), self.slot_token_id, dtype=torch.long)
        example = {
            "input_ids": torch.cat([input_ids.long(), slots]),
            **{name: torch.cat([encoded.pop(name).long(), torch.zeros(self.num_slots, dtype=torch.long)])
               for name in self.family.token_inputs},
            "vision": encoded,
            "teacher_images": unit_rgb(images, images.shape[1]),
            "dataset_name": sample.get("dataset_name"),
        }
        if sample.get("proprio") is not None:
            example["state"] = torch.as_tensor(np.asarray(sample["proprio"], dtype=np.float32))
        if sample.get("actions") is not None:
            example["actions"] = torch.as_tensor(np.asarray(sample["actions"], dtype=np.float32))
        return example

    def _resized(self, images: np.ndarray) -> list[np.ndarray]:
        if self.image_sizes is None:
            return list(images)
        return [
            (unit_rgb(image[None], size)[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
            for image, size in zip(images, self.image_sizes)
        ]

    def save_pretrained(self, directory: str | Path) -> None:
        """The family's processor files (tokenizer, image processor)."""
        self.processor.save_pretrained(str(directory))
        make_readable(directory)

    def collator(self) -> VLMCollator:
        return VLMCollator(self.family, self.pad_token_id, self.num_slots, self.spec.use_proprio)


@dataclass(frozen=True)
class VLMCollator:
    """Right-pads the token inputs; returns them with `attention_mask [B, L]` (int64), the family's vision inputs,
    `teacher_images [B, V, 3, S, S]`, `state` / `actions` when the examples have them, `action_positions [B, K]` and
    `proprio_positions [B]` (when the proprio token is used), and `dataset_names`."""

    family: VLMFamily
    pad_token_id: int
    num_slots: int
    use_proprio: bool

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        lengths = torch.tensor([len(example["input_ids"]) for example in examples])
        input_ids = pad_sequence([e["input_ids"] for e in examples], batch_first=True, padding_value=self.pad_token_id)
        first_slot = (lengths - self.num_slots)[:, None]
        slots = first_slot + torch.arange(self.num_slots)  # [B, slots]: proprio (if used), then the action queries
        batch = {
            "input_ids": input_ids,
            "attention_mask": (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long(),
            **{name: pad_sequence([e[name] for e in examples], batch_first=True) for name in self.family.token_inputs},
            **self.family.collate_vision([example["vision"] for example in examples]),
            "teacher_images": torch.stack([example["teacher_images"] for example in examples]),
            "action_positions": slots[:, int(self.use_proprio):],
            "dataset_names": [example["dataset_name"] for example in examples],
        }
        if self.use_proprio:
            batch["proprio_positions"] = slots[:, 0]
        for key in ("state", "actions"):
            if all(key in example for example in examples):
                batch[key] = torch.stack([example[key] for example in examples])
        return batch
