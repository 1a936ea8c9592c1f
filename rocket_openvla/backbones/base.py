"""What the finetune loop and the residual capture need from a VLA backbone, whatever its family.

Index conventions: student layer k = Hugging Face `hidden_states[k]` (0 = embeddings, n = after the final norm).
Image tokens are described per batch (`image_tokens`): for every camera slot in order, its `camera_grids[i]` tokens
row-major, at sequence positions that may differ per sample, with a mask for the ones that do not exist (absent
cameras, padding). The teacher sees the same camera slots in the same order, so its pooled targets line up token for
token and the same mask applies to them.
"""

from __future__ import annotations

import contextlib
import json
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
from peft import PeftModel
from torch import nn

from rocket_openvla.backbones.lora import LORA_DIR, save_lora_adapter, wrap_with_lora
from rocket_openvla.capture import CapturePoints
from rocket_openvla.files import make_readable, write_text
from rocket_openvla.normalization import DatasetStatistics, save_dataset_statistics

POLICY_CONFIG_NAME = "policy_config.json"  # a policy's settings beside its weights (every backbone's own schema)


def save_policy_files(
    path: str | Path, model: nn.Module, spec: Any, statistics: Mapping[str, DatasetStatistics]
) -> Path:
    """What every policy directory holds: the model (only its LoRA adapter when wrapped, else its full weights in
    the Hugging Face layout), `dataset_statistics.json` and the spec as `policy_config.json`. Returns the directory."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel):
        save_lora_adapter(model, path / LORA_DIR)
    else:
        model.save_pretrained(str(path))
        make_readable(path)
    if statistics:
        save_dataset_statistics(statistics, path)
    write_text(path / POLICY_CONFIG_NAME, json.dumps(asdict(spec), indent=2, sort_keys=True))
    return path


def tensors_to(batch: Mapping[str, Any], device: torch.device | str) -> dict[str, Any]:
    """`batch` with its tensors on `device` (other values as they are)."""
    return {key: value.to(device, non_blocking=True) if torch.is_tensor(value) else value
            for key, value in batch.items()}


def pad_prompts(prompts: Sequence[Sequence[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `input_ids [B, L]` int64 and `attention_mask [B, L]` bool (False on padding) of token lists."""
    input_ids = torch.nn.utils.rnn.pad_sequence(
        [torch.tensor(prompt, dtype=torch.long) for prompt in prompts], batch_first=True, padding_value=pad_token_id
    )
    lengths = torch.tensor([len(prompt) for prompt in prompts])
    return input_ids, torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]


def device_autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bfloat16 autocast on CUDA (how policies train and run there); on CPU the weights' own dtype."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """`module` in eval mode inside the block, in its previous mode afterwards (inference during training)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


@dataclass(frozen=True)
class ImageTokens:
    """Where one batch's image tokens sit, in the teacher's token order (camera slot-major, then row-major).

    Attributes:
        positions: `[B, T]` int64 sequence position of each token, `T = sum(gh * gw over camera_grids)`; tokens that
            do not exist point at any valid position (they are masked).
        mask: `[B, T]` bool, False for the tokens of absent cameras and of padding.
    """

    positions: torch.Tensor
    mask: torch.Tensor


def image_token_positions(
    input_ids: torch.Tensor, image_token_id: int, tokens_per_slot: Sequence[int], present: torch.Tensor | None = None
) -> ImageTokens:
    """The `ImageTokens` of a batch whose present cameras' image tokens are marked by `image_token_id`, camera after
    camera in slot order (what every transformers VLM processor and PI0 write).

    Args:
        input_ids: `[B, L]`.
        tokens_per_slot: image tokens of each camera slot (its grid's `gh * gw`).
        present: `[B, slots]` bool, which slots hold an image (None: all); absent slots have no tokens and are masked.

    Shape-static and without a host sync: image positions are sorted to the front of each row, then indexed.
    """
    batch_size, length = input_ids.shape
    device = input_ids.device
    if present is None:
        present = torch.ones(batch_size, len(tokens_per_slot), dtype=torch.bool, device=device)
    order = torch.arange(length, device=device).expand(batch_size, -1)
    image_positions = torch.where(input_ids == image_token_id, order, order + length).argsort(dim=1)
    counts = torch.tensor(tokens_per_slot, device=device) * present.long()  # [B, slots]
    first = counts.cumsum(dim=1) - counts  # [B, slots]: image tokens of the present slots before each slot
    index = torch.cat([first[:, [slot]] + torch.arange(count, device=device)
                       for slot, count in enumerate(tokens_per_slot)], dim=1)
    positions = image_positions.gather(1, index.clamp_max(length - 1))  # absent slots point anywhere: masked
    mask = torch.cat([present[:, [slot]].expand(-1, count) for slot, count in enumerate(tokens_per_slot)], dim=1)
    return ImageTokens(positions, mask)


@dataclass
class PolicyOutput:
    """Result of `policy(batch)`: the scalar training loss and detached scalar metrics (no host sync)."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor] = field(default_factory=dict)


class BackboneAdapter(ABC):
    """One VLA family behind the interface of the training loop, the ROCKET capture and checkpointing.

    `policy` is the only module that trains: `policy(batch) -> PolicyOutput`. Every trainable part (the LoRA'd VLA,
    action heads, state projectors) is a submodule of it, so wrapping the policy in DDP syncs all of them.
    """

    # Pixel layout of `teacher_images(batch)`, so that a teacher can rebuild the RGB images the VLA saw.
    teacher_input_format: ClassVar[str]

    def __init__(self, policy: nn.Module, processor: Any) -> None:
        self._policy = policy
        self._processor = processor

    @property
    def policy(self) -> nn.Module:
        """`forward(batch: dict[str, Tensor]) -> PolicyOutput`."""
        return self._policy

    @property
    def processor(self) -> Any:
        """Turns raw samples into model inputs (`processor(sample)`) and batches them (`processor.collator()`)."""
        return self._processor

    @property
    @abstractmethod
    def hidden_size(self) -> int:
        """Width D of the residual stream."""

    @property
    @abstractmethod
    def num_hidden_layers(self) -> int:
        """n decoder blocks; `hidden_states` has n + 1 entries."""

    @property
    @abstractmethod
    def num_images(self) -> int:
        """Camera slots per sample (the teacher's frames), present or not."""

    @property
    @abstractmethod
    def camera_grids(self) -> tuple[tuple[int, int], ...]:
        """Image-token grid (rows, cols) of each camera slot."""

    @property
    def pixel_normalization(self) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
        """`(mean, std)` per RGB channel the processor normalised the teacher-read channels of `pixel_values` with,
        so that the teacher sees exactly the student's pixels; None when the format needs no inversion."""
        return None

    @abstractmethod
    def image_tokens(self, batch: Mapping[str, Any]) -> ImageTokens:
        """Positions and validity of the batch's image tokens (see `ImageTokens`), without a host sync."""

    def teacher_images(self, batch: Mapping[str, Any]) -> torch.Tensor:
        """The batch's camera images in `teacher_input_format`, one frame per camera slot."""
        return batch["pixel_values"]

    @abstractmethod
    def capture_points(self) -> CapturePoints:
        """The decoder blocks and final norm whose inputs/output are `hidden_states`; valid after `apply_lora`."""

    # The policy attribute that holds the model LoRA wraps (e.g. "vla"); the heads beside it train fully.
    lora_attribute: ClassVar[str]
    # Modules inside that model that train fully instead of getting adapters (peft `modules_to_save`).
    lora_modules_to_save: ClassVar[tuple[str, ...]] = ()

    @property
    def has_lora(self) -> bool:
        """True once the model carries LoRA adapters (applied, or loaded from a run directory)."""
        return isinstance(getattr(self._policy, self.lora_attribute), PeftModel)

    def lora_target_modules(self, model: nn.Module) -> str | list[str]:
        """What "all-linear" means for this family (default: peft's own, every linear layer but the LM head)."""
        return "all-linear"

    def apply_lora(
        self,
        rank: int,
        alpha: float,
        dropout: float = 0.0,
        target_modules: str | list[str] = "all-linear",
        init: str | bool = "gaussian",
    ) -> None:
        """Wrap the model with peft LoRA (base weights frozen); heads and state projectors stay fully trainable."""
        if self.has_lora:
            raise RuntimeError(
                "the model already carries a LoRA adapter (loaded from a run directory's lora_adapter/, or applied "
                "before); check adapter.has_lora before apply_lora"
            )
        model = getattr(self._policy, self.lora_attribute)
        targets = self.lora_target_modules(model) if target_modules == "all-linear" else target_modules
        wrapped = wrap_with_lora(model, rank, alpha, dropout, targets, init, self.lora_modules_to_save)
        setattr(self._policy, self.lora_attribute, wrapped)

    def save_base_model(self, path: str | Path) -> None:
        """Write the model LoRA wraps, as it is now, to `path` (Hugging Face layout) and record `path` as its origin,
        so every LoRA adapter saved later names it as its base (a run that starts from random weights keeps them)."""
        if self.has_lora:
            raise RuntimeError("save_base_model needs the model before LoRA is applied")
        model = getattr(self._policy, self.lora_attribute)
        path = Path(path).resolve()
        model.save_pretrained(str(path))
        make_readable(path)
        model.name_or_path = str(path)  # what peft records as the adapter's base_model_name_or_path

    def merge_lora(self) -> None:
        """Fold the LoRA adapters into the base weights in place (for deployment; training continues without LoRA)."""
        if not self.has_lora:
            raise RuntimeError("the model carries no LoRA adapter to merge")
        setattr(self._policy, self.lora_attribute, getattr(self._policy, self.lora_attribute).merge_and_unload())

    def set_dtype(self, dtype: torch.dtype) -> None:
        """Cast the policy's weights to `dtype`, keeping the modules the family holds in float32 (e.g. OFT's proprio
        projector) in float32."""
        self._policy.set_dtype(dtype)

    def set_dataset_statistics(self, statistics: Mapping[str, Mapping[str, Any] | DatasetStatistics]) -> None:
        """Attach `{dataset_name: entry}` (OFT's `dataset_statistics.json` schema, or parsed entries) to the policy,
        which un-normalises its actions with them and saves them."""
        self.policy.statistics = {
            name: entry if isinstance(entry, DatasetStatistics) else DatasetStatistics.from_dict(entry, where=name)
            for name, entry in statistics.items()
        }

    @property
    @abstractmethod
    def action_chunk(self) -> int:
        """Actions per sample the policy trains on (must equal `data.num_actions_chunk`)."""

    @property
    @abstractmethod
    def action_dim(self) -> int:
        """Dimensions of one action."""

    @property
    @abstractmethod
    def state_dim(self) -> int | None:
        """Dimensions of the robot state the policy takes (None: it takes no state)."""

    @property
    def device(self) -> torch.device:
        """Where the policy's weights are."""
        return next(self._policy.parameters()).device

    @abstractmethod
    def predict_actions(
        self,
        images: torch.Tensor,
        instructions: Sequence[str],
        proprio: torch.Tensor | None = None,
        unnorm_key: str | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Un-normalised action chunks `[B, chunk, action_dim]` (float32) of B observations, in eval mode, no grad.

        Args:
            images: uint8 `[B, V, S, S, 3]`: every sample's cameras as the data pipeline delivers them in training
                (in its camera order, resized to `data.image_size`; `rocket_openvla.deploy.Policy` prepares them).
            instructions: B task descriptions.
            proprio: `[B, state_dim]` raw robot states, normalised with the `unnorm_key` dataset's statistics (None
                when `state_dim` is None).
            unnorm_key: the dataset whose statistics un-normalise the actions (may be omitted with one dataset).
            generator: seeds the starting noise of sampling heads (diffusion, flow matching).
        """

    def ddp_find_unused_parameters(self, student_layers: Sequence[int]) -> bool:
        """True when some trainable parameters get no gradient in a step with these aligned `hidden_states` indices
        (none for the baseline), so DDP must look for them."""
        return False

    @abstractmethod
    def save_pretrained(self, path: str | Path, tag: str = "latest") -> None:
        """Write everything needed to reload the policy (weights, adapters, heads, dataset statistics)."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.policy.parameters() if p.requires_grad]
