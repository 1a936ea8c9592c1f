"""OpenVLA's discrete action tokens: 256 uniform bins per action dimension mapped onto the last 256 base-vocabulary
ids (the least used tokens of Llama-2's 32000-entry vocabulary).

Rules (OpenVLA's `ActionTokenizer`, kept bit-for-bit):
- bins = `np.linspace(min_action, max_action, n_bins)` (256 edges), bin_centers = midpoints of adjacent edges (255).
- encode: clip to [min_action, max_action], `b = np.digitize(a, bins)` in [1, n_bins] (edge values go to the upper
  bin; a == max_action gives n_bins), token id = `vocab_size - b`, so ids lie in [vocab_size - n_bins, vocab_size - 1]
  = [31744, 31999] for Llama-2; -1 maps to 31999 and +1 to 31744.
- decode: `bin_centers[clip(vocab_size - id - 1, 0, n_bins - 2)]`; ids outside the action range clip to the first or
  last bin center (OpenVLA decodes argmax tokens that way, without checking that they are action tokens).
- `action_token_begin_idx = vocab_size - (n_bins + 1)` (31743): action tokens are the ids above it.

`vocab_size` is the tokenizer's base vocabulary (32000; `<PAD>` 32000 is an added token), which equals the model's
padded embedding count minus `pad_to_multiple_of` (32064 - 64).
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


class ActionTokenizer:
    """Continuous actions `[..., action_dim]` <-> action token ids `[..., action_dim]` (numpy or torch in, same out)."""

    def __init__(
        self, vocab_size: int = 32000, n_bins: int = 256, min_action: float = -1.0, max_action: float = 1.0
    ) -> None:
        if n_bins < 2 or vocab_size <= n_bins:
            raise ValueError(f"need 2 <= n_bins < vocab_size, got n_bins={n_bins}, vocab_size={vocab_size}")
        self.vocab_size, self.n_bins = vocab_size, n_bins
        self.min_action, self.max_action = float(min_action), float(max_action)
        self.bins = np.linspace(min_action, max_action, n_bins)
        self.bin_centers = (self.bins[:-1] + self.bins[1:]) / 2.0

    @classmethod
    def from_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, n_bins: int = 256) -> ActionTokenizer:
        """Bins on the top `n_bins` ids of `tokenizer`'s base vocabulary (without added tokens such as `<PAD>`)."""
        return cls(vocab_size=tokenizer.vocab_size, n_bins=n_bins)

    @property
    def action_token_begin_idx(self) -> int:
        """The id just below the first action token: ids `> action_token_begin_idx` are action tokens."""
        return self.vocab_size - (self.n_bins + 1)

    def encode(self, actions: ArrayT) -> ArrayT:
        """Actions `[..., action_dim]` (float) -> token ids `[..., action_dim]` (int64)."""
        if isinstance(actions, torch.Tensor):
            # float64 comparisons against OpenVLA's float64 edges, exactly as np.digitize does them.
            clipped = actions.to(torch.float64).clamp(self.min_action, self.max_action)
            bins = torch.from_numpy(self.bins).to(actions.device)
            return self.vocab_size - torch.bucketize(clipped, bins, right=True)
        clipped = np.clip(np.asarray(actions), self.min_action, self.max_action)
        return (self.vocab_size - np.digitize(clipped, self.bins)).astype(np.int64)

    def decode(self, token_ids: ArrayT) -> ArrayT:
        """Token ids `[..., action_dim]` -> bin-center actions `[..., action_dim]` (float64 numpy / float32 torch)."""
        if isinstance(token_ids, torch.Tensor):
            centers = torch.from_numpy(self.bin_centers).to(device=token_ids.device, dtype=torch.float32)
            return centers[(self.vocab_size - token_ids - 1).clamp(0, self.n_bins - 2)]
        bin_indices = np.clip(self.vocab_size - np.asarray(token_ids) - 1, 0, self.n_bins - 2)
        return self.bin_centers[bin_indices]

    def is_action_token(self, token_ids: ArrayT) -> ArrayT:
        """Boolean mask of the ids in the action range `(action_token_begin_idx, vocab_size)`."""
        return (token_ids > self.action_token_begin_idx) & (token_ids < self.vocab_size)

    def encode_to_string(self, actions: np.ndarray | torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> str:
        """The text OpenVLA splices into its prompt: the action tokens of all steps, row-major, decoded to text."""
        token_ids = self.encode(actions)
        return tokenizer.decode([int(token_id) for token_id in token_ids.reshape(-1).tolist()])
