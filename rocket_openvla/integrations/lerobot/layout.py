"""Where ROCKET reads a lerobot pi0 / pi0.5 / SmolVLA policy. Torch only: lerobot's own training script can use it.

Facts of lerobot 0.6.1 encoded here:
- The training forward never calls the VLM's decoder blocks: a mixture-of-transformers loop calls each block's
  `input_layernorm`, projections and MLP directly. So `hidden_states[k]` (k < n) is the input of
  `layers[k].input_layernorm` (the prefix tokens only, `[B, prefix_len, D]`) and `hidden_states[n]` is the output of
  the language model's final norm. Gradient checkpointing re-runs those modules in backward; `ResidualCapture` keeps
  the first capture of a forward.
- The prefix holds the camera slots first, then the language tokens (SmolVLA: then one state token). Slot s holds
  `n` image tokens, row-major over the camera's patch grid, at `[s * n, (s + 1) * n)`; with SmolVLA's
  `add_image_special_tokens` each slot is `[fake, global] + n + [fake]`, so they sit at `[s * (n + 3) + 2, ...)`.
- Slot order: the image features the batch holds, in the config's order, then the missing ones as black, masked
  images (pi0 / pi0.5: all of them; SmolVLA: at most `empty_cameras`). SmolVLA also takes a per-sample
  `<key>_padding_mask`.

Functions take the lerobot policy itself (unwrap a peft wrapper first).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from rocket_openvla.capture import CapturePoints

PI_POLICIES = ("pi0", "pi05")
SMOLVLA = "smolvla"
SPECIAL_TOKENS_BEFORE, SPECIAL_TOKENS_AROUND = 2, 3  # SmolVLA's [fake, global] + image + [fake]


def policy_type(policy: nn.Module) -> str:
    """lerobot's name of the policy ("pi0", "pi05" or "smolvla")."""
    name = getattr(policy, "name", None)
    if name not in (*PI_POLICIES, SMOLVLA):
        raise ValueError(
            f"{type(policy).__name__} (name {name!r}) is not a lerobot pi0 / pi05 / smolvla policy; pass the "
            "PI0Policy, PI05Policy or SmolVLAPolicy itself (a peft-wrapped one: .get_base_model())"
        )
    return name


def language_model(policy: nn.Module) -> nn.Module:
    """The VLM's language model (`.layers`, `.norm`); SmolVLA's is cut to its first `num_vlm_layers` blocks."""
    if policy_type(policy) == SMOLVLA:
        return policy.model.vlm_with_expert.vlm.model.text_model
    return policy.model.paligemma_with_expert.paligemma.model.language_model


def capture_points(policy: nn.Module) -> CapturePoints:
    """`hidden_states[k]` at `layers[k].input_layernorm`'s input, `hidden_states[n]` at the final norm's output."""
    return CapturePoints.from_decoder(language_model(policy), input_submodule="input_layernorm")


def camera_grid(policy: nn.Module) -> tuple[int, int]:
    """(rows, cols) of image tokens per camera: the vision patch grid (SmolVLA: shrunk by its pixel shuffle)."""
    if policy_type(policy) == SMOLVLA:
        vlm_config = policy.model.vlm_with_expert.config
        vision = vlm_config.vision_config
        width, height = policy.config.resize_imgs_with_padding or (vision.image_size, vision.image_size)
        step = vision.patch_size * vlm_config.scale_factor
        return height // step, width // step
    vision = policy.model.paligemma_with_expert.paligemma.config.vision_config
    side = vision.image_size // vision.patch_size
    return side, side


def camera_slots(config: Any, batch_keys: Any) -> list[str]:
    """The image feature of each camera slot, in slot order, for a batch holding `batch_keys`."""
    keys = list(config.image_features)
    present = [key for key in keys if key in batch_keys]
    missing = [key for key in keys if key not in batch_keys]
    if not present:
        raise ValueError(f"the batch holds none of the policy's image features {keys}")
    if config.type == SMOLVLA:
        missing = missing[: config.empty_cameras]
    return present + missing


def slot_masks(policy: nn.Module, batch: Mapping[str, Any]) -> torch.Tensor:
    """`[B, slots]` bool: which camera slots hold an image, per sample (lerobot's image masks)."""
    config = policy.config
    slots = camera_slots(config, batch)
    first = batch[slots[0]]
    ones = torch.ones(first.shape[0], dtype=torch.bool, device=first.device)
    columns = []
    for key in slots:
        if key not in batch:
            columns.append(torch.zeros_like(ones))
        elif config.type == SMOLVLA and f"{key}_padding_mask" in batch:
            columns.append(batch[f"{key}_padding_mask"].to(ones.device).bool())
        else:
            columns.append(ones)
    return torch.stack(columns, dim=1)


def image_token_offsets(policy: nn.Module, num_slots: int) -> torch.Tensor:
    """`[slots * n]` prefix position of every image token, slot after slot, each row-major over its grid."""
    rows, cols = camera_grid(policy)
    count = rows * cols
    stride, first = count, 0
    if policy_type(policy) == SMOLVLA and policy.config.add_image_special_tokens:
        stride, first = count + SPECIAL_TOKENS_AROUND, SPECIAL_TOKENS_BEFORE
    return torch.cat([slot * stride + first + torch.arange(count) for slot in range(num_slots)])


def image_tokens(policy: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """`(positions [B, T], mask [B, T])` of the batch's image tokens in the prefix, camera slot-major; the tokens of
    absent cameras are masked. No host sync."""
    masks = slot_masks(policy, batch)
    batch_size, num_slots = masks.shape
    rows, cols = camera_grid(policy)
    positions = image_token_offsets(policy, num_slots).to(masks.device).expand(batch_size, -1)
    return positions, masks.repeat_interleave(rows * cols, dim=1)


def student_images(policy: nn.Module, batch: Mapping[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """The camera images as the policy sees them, by lerobot's own preprocessing (resize with padding, absent
    slots): `(images [B, slots, 3, H, W] in [-1, 1], present [B, slots] bool)`."""
    if policy_type(policy) == SMOLVLA:
        images, masks = policy.prepare_images(dict(batch))
    else:
        images, masks = policy._preprocess_images(dict(batch))
    return torch.stack(images, dim=1), torch.stack(masks, dim=1)
