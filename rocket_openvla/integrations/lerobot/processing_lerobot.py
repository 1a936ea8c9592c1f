"""Our samples -> lerobot's training batch, as lerobot's own preprocessor would hand it to the policy.

Per sample (raw: `images` uint8 `[V, H, W, 3]` in `backbone.cameras` order, `instruction`, `actions [chunk, A]` and
`proprio [P]`, both already normalised to [-1, 1] by our data pipeline, which replaces lerobot's normalizer step):
    images                 `[V, 3, S, S]` in [0, 1], resized to the policy's square input size (lerobot then has
                           nothing to pad); kept as they come when the policy's size is not square
    state / actions        the normalised state and action chunk (lerobot pads them to its max dims)
    input_ids              the task as lerobot's own task steps rewrite it (pi0 / SmolVLA: a trailing newline;
                           pi05: "Task: ..., State: <256-bin state>;\\nAction: "), tokenized and truncated to the
                           policy's `tokenizer_max_length`
The collator returns lerobot's batch keys: one `observation.images.<camera>` `[B, 3, S, S]` per camera,
`observation.state [B, P]`, `action [B, chunk, A]`, `observation.language.tokens [B, L]` and
`observation.language.attention_mask [B, L]` (right-padded: to `tokenizer_max_length` for pi0 / pi05, to the longest
prompt for SmolVLA unless its `pad_language_to` is "max_length"), plus `dataset_names`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from transformers import PreTrainedTokenizerBase

from rocket_openvla.backbones.images import unit_rgb
from rocket_openvla.integrations.lerobot.loading import image_size

STATE_KEY, ACTION_KEY = "observation.state", "action"
TOKENS_KEY, TOKEN_MASK_KEY = "observation.language.tokens", "observation.language.attention_mask"


@dataclass(frozen=True)
class LeRobotLayout:
    """What the processor needs to know about the policy (from lerobot's config)."""

    policy_type: str
    cameras: tuple[str, ...]  # lerobot image keys of the sample's cameras, in order
    image_size: int | None  # square side the policy takes (None: not square; lerobot resizes with padding)
    state_dim: int
    action_dim: int
    chunk_size: int
    max_tokens: int  # lerobot's tokenizer_max_length
    pad_to_max_tokens: bool

    @classmethod
    def from_config(cls, config: Any, cameras: Sequence[str]) -> LeRobotLayout:
        size = image_size(config)
        smolvla = config.type == "smolvla"
        return cls(
            policy_type=config.type, cameras=tuple(cameras),
            image_size=size[0] if size is not None and size[0] == size[1] else None,
            state_dim=config.input_features[STATE_KEY].shape[0], action_dim=config.output_features[ACTION_KEY].shape[0],
            chunk_size=config.chunk_size, max_tokens=config.tokenizer_max_length,
            pad_to_max_tokens=not smolvla or config.pad_language_to == "max_length",
        )


def task_steps(policy_type: str, max_state_dim: int) -> list[Any]:
    """lerobot's processor steps that rewrite the task text before its tokenizer step, per policy type."""
    if policy_type == "pi05":
        from lerobot.policies.pi05.processor_pi05 import Pi05PrepareStateTokenizerProcessorStep

        return [Pi05PrepareStateTokenizerProcessorStep(max_state_dim=max_state_dim)]
    if policy_type == "pi0":
        from lerobot.policies.pi0.processor_pi0 import Pi0NewLineProcessor

        return [Pi0NewLineProcessor()]
    from lerobot.processor import NewLineTaskProcessorStep

    return [NewLineTaskProcessorStep()]


class LeRobotInputProcessor:
    """Turns raw samples into lerobot training examples (module docstring); `collator()` batches them."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase, layout: LeRobotLayout, max_state_dim: int) -> None:
        if tokenizer.pad_token_id is None:
            raise ValueError("the tokenizer has no pad token; lerobot pads prompts with it (pass a tokenizer with one)")
        self.tokenizer, self.layout = tokenizer, layout
        self._steps = task_steps(layout.policy_type, max_state_dim)

    def prompt(self, instruction: str, state: torch.Tensor) -> str:
        """The task text lerobot's steps make of `instruction` (pi05 writes the normalised `state [P]` into it)."""
        from lerobot.processor import TransitionKey, create_transition

        transition = create_transition(observation={STATE_KEY: state[None]},
                                       complementary_data={"task": [instruction]})
        for step in self._steps:
            transition = step(transition)
        return transition[TransitionKey.COMPLEMENTARY_DATA]["task"][0]

    def __call__(self, sample: Mapping[str, Any]) -> dict[str, Any]:
        layout = self.layout
        state = torch.as_tensor(np.asarray(sample["proprio"], dtype=np.float32))
        actions = torch.as_tensor(np.asarray(sample["actions"], dtype=np.float32))
        if actions.shape != (layout.chunk_size, layout.action_dim):
            raise ValueError(
                f"actions {tuple(actions.shape)}; the policy trains on [{layout.chunk_size}, {layout.action_dim}] "
                "(backbone.chunk_size = data.num_actions_chunk, backbone.action_dim)"
            )
        example = self.observation(sample["images"], sample["instruction"], state)
        return {**example, "actions": actions, "dataset_name": sample["dataset_name"]}

    def observation(self, images: np.ndarray | torch.Tensor, instruction: str, state: torch.Tensor) -> dict[str, Any]:
        """One observation: uint8 camera images `[V, H, W, 3]`, the task and the normalised state `[P]`."""
        layout = self.layout
        if len(images) != len(layout.cameras):
            raise ValueError(
                f"a sample has {len(images)} camera images but backbone.cameras names {len(layout.cameras)} "
                f"({list(layout.cameras)}); name one lerobot image key per camera of the data, in order"
            )
        if state.shape != (layout.state_dim,):
            raise ValueError(f"state {tuple(state.shape)}; the policy takes [{layout.state_dim}] (backbone.state_dim)")
        if layout.image_size is None and images.shape[1] != images.shape[2]:
            raise ValueError(f"camera images of shape {tuple(images.shape)}; the pipeline delivers square ones")
        text = self.prompt(instruction, state)
        input_ids = self.tokenizer(text, truncation=True, max_length=layout.max_tokens).input_ids
        return {
            "images": unit_rgb(images, layout.image_size or images.shape[1]),
            "state": state,
            "input_ids": torch.tensor(input_ids, dtype=torch.long),
        }

    def save_pretrained(self, directory: str | Path) -> None:
        """The tokenizer files (everything else is in the policy's config.json)."""
        self.tokenizer.save_pretrained(str(directory))

    def collator(self) -> LeRobotCollator:
        return LeRobotCollator(self.layout, self.tokenizer.pad_token_id)


@dataclass(frozen=True)
class LeRobotCollator:
    """Batches processor examples (or observations, then without `action`) into lerobot's batch (module docstring)."""

    layout: LeRobotLayout
    pad_token_id: int

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        tokens = [example["input_ids"] for example in examples]
        length = self.layout.max_tokens if self.layout.pad_to_max_tokens else max(len(t) for t in tokens)
        padded = pad_sequence([*tokens, torch.zeros(length, dtype=torch.long)], batch_first=True,
                              padding_value=self.pad_token_id)[:-1]
        lengths = torch.tensor([len(t) for t in tokens])
        images = torch.stack([example["images"] for example in examples], dim=1)  # [V, B, 3, S, S]
        batch = {
            **dict(zip(self.layout.cameras, images)),
            STATE_KEY: torch.stack([example["state"] for example in examples]),
            TOKENS_KEY: padded,
            TOKEN_MASK_KEY: torch.arange(length)[None, :] < lengths[:, None],
        }
        if "actions" in examples[0]:  # training examples (not observations)
            batch[ACTION_KEY] = torch.stack([example["actions"] for example in examples])
            batch["dataset_names"] = [example["dataset_name"] for example in examples]
        return batch
