"""Record residual-stream states of chosen layers with hooks, exactly as Hugging Face `hidden_states[k]`.

Index convention, for a stack of n decoder blocks:
    0          the input of block 0 (the embeddings)
    1 .. n-1   the output of block k-1, i.e. the input of block k
    n          the output of the final norm
Negative indices count from the end of those n+1 entries.

States `k < n` are read by a forward-pre-hook at the *input* of block k, or of a submodule that receives the
block's input (e.g. `layers[k].input_layernorm`): mixture-of-experts VLAs (openpi / lerobot pi0) call those
submodules directly and never call their decoder blocks. State n is read by a forward hook on the final norm
(a tuple output contributes its first element).

Gradient checkpointing re-runs hooks inside checkpointed regions during backward; the capture keeps the first
state per forward and records only while armed (`reset()` arms, `collect()` disarms). Hooks sit on module
objects, so they survive peft LoRA wrapping (which keeps those objects).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from rocket_openvla.align.layers import resolve_layers


@dataclass(frozen=True)
class CapturePoints:
    """Where a decoder stack's residual stream can be read.

    Attributes:
        layer_inputs: n modules; module k receives the input of decoder block k as its first argument
            (the blocks themselves, or submodules such as `layers[k].input_layernorm`).
        final_norm: the norm after the last block; its output is state n.
    """

    layer_inputs: Sequence[nn.Module]
    final_norm: nn.Module

    @property
    def num_states(self) -> int:
        """Number of `hidden_states` entries: n blocks + 1."""
        return len(self.layer_inputs) + 1

    @classmethod
    def from_decoder(cls, decoder: nn.Module, input_submodule: str | None = None) -> CapturePoints:
        """Capture points of a module with `.layers` (ModuleList) and `.norm` (transformers decoders).

        Args:
            input_submodule: read block k's input at `layers[k].<input_submodule>` instead of at the block
                (use "input_layernorm" for mixture-of-experts models whose blocks are never called).
        """
        layers = list(decoder.layers)
        if input_submodule is not None:
            layers = [getattr(layer, input_submodule) for layer in layers]
        return cls(layer_inputs=layers, final_norm=decoder.norm)


def find_decoder(model: nn.Module) -> nn.Module:
    """The language decoder of a transformers model: the module owning `layers` (ModuleList) and `norm`.

    Prefers a module under a `language_model` attribute (VLMs), otherwise the first match in module order.

    Raises:
        ValueError: no such module exists.
    """
    candidates = [
        (name, module) for name, module in model.named_modules()
        if isinstance(getattr(module, "layers", None), nn.ModuleList)
        and isinstance(getattr(module, "norm", None), nn.Module)
    ]
    if not candidates:
        raise ValueError(
            f"{type(model).__name__} has no submodule with `.layers` and `.norm`; "
            "build CapturePoints(layer_inputs=..., final_norm=...) for it explicitly"
        )
    for name, module in candidates:
        if "language_model" in name.split("."):
            return module
    return candidates[0][1]


def _first_tensor(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, (tuple, list)) else value


class ResidualCapture:
    """Context manager recording `hidden_states[k]` for the requested indices during a forward pass.

    Example:
        with ResidualCapture(CapturePoints.from_decoder(find_decoder(model)), [2, -1]) as capture:
            model(**inputs)
        states = capture.collect()  # {2: [B, S, D], n: [B, S, D]}

    When reused across steps: call `reset()` before each forward and `collect()` after it.
    """

    def __init__(self, points: CapturePoints, indices: Sequence[int]) -> None:
        self.points = points
        self.indices = resolve_layers(indices, points.num_states, "capture indices")
        self.states: dict[int, torch.Tensor] = {}
        self._armed = False
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> ResidualCapture:
        self.attach()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def attach(self) -> None:
        """Register the hooks and arm the capture."""
        if self._handles:
            raise RuntimeError("ResidualCapture is already attached")
        final = self.points.num_states - 1
        for index in sorted(set(self.indices)):
            if index == final:
                handle = self.points.final_norm.register_forward_hook(self._output_hook(index))
            else:
                handle = self.points.layer_inputs[index].register_forward_pre_hook(
                    self._input_hook(index), with_kwargs=True
                )
            self._handles.append(handle)
        self.reset()

    def remove(self) -> None:
        """Remove every hook; the capture records nothing afterwards."""
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._armed = False

    def reset(self) -> None:
        """Forget earlier states and record the next forward."""
        self.states = {}
        self._armed = True

    def collect(self) -> dict[int, torch.Tensor]:
        """States of the forward since `reset()`, `{index: [B, S, D]}`; stop recording until the next `reset()`.

        The states are handed over: the capture keeps no reference to them, so they are freed as soon as the caller
        and autograd are done with them (not only at the next `reset()`).

        Raises:
            RuntimeError: a requested state was not seen (the forward did not pass through its capture point).
        """
        self._armed = False
        states, self.states = self.states, {}
        missing = [index for index in self.indices if index not in states]
        if missing:
            raise RuntimeError(
                f"hidden states {missing} were not captured: the forward never reached their capture points; "
                "for models that call decoder sub-modules directly use CapturePoints.from_decoder(..., "
                "input_submodule='input_layernorm')"
            )
        return {index: states[index] for index in self.indices}

    def _record(self, index: int, value: torch.Tensor) -> None:
        if self._armed:
            self.states.setdefault(index, value)

    def _input_hook(self, index: int):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            self._record(index, args[0] if args else kwargs["hidden_states"])
        return hook

    def _output_hook(self, index: int):
        def hook(module: nn.Module, args: tuple, output: Any) -> None:
            self._record(index, _first_tensor(output))
        return hook
