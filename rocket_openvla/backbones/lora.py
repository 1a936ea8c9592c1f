"""LoRA for every backbone: wrap a model with peft, save the adapter into a run directory, load a run directory that
holds only the adapter on top of its base model.

A run directory stores a LoRA-wrapped model as `lora_adapter/` (peft's `adapter_config.json` +
`adapter_model.safetensors`); its `base_model_name_or_path` records the directory the base weights came from. A run
that starts from random weights writes them once to `<run_dir>/base_model/` and records that; a policy directory
inside a run directory that was moved finds it there.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from peft import LoraConfig, PeftModel, get_peft_model
from torch import nn

from rocket_openvla.errors import MissingInputError
from rocket_openvla.files import make_readable

LORA_DIR = "lora_adapter"
BASE_MODEL_DIR = "base_model"
# How far above a policy directory its run directory may be: <run>/, <run>/checkpoints/step_N/policy/
_RUN_DIR_DEPTH = 3


def wrap_with_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: str | Sequence[str],
    init: str | bool,
    modules_to_save: Sequence[str] | None = None,
) -> PeftModel:
    """`model` with LoRA adapters on `target_modules` (base weights frozen); `modules_to_save` train fully."""
    config = LoraConfig(
        r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=target_modules, init_lora_weights=init,
        modules_to_save=list(modules_to_save) if modules_to_save else None,
    )
    return get_peft_model(model, config)


def unwrap(model: nn.Module) -> nn.Module:
    """The model under a peft wrapper (the model itself when it has none)."""
    return model.get_base_model() if isinstance(model, PeftModel) else model


def save_lora_adapter(peft_model: PeftModel, target: Path) -> None:
    """peft's `save_pretrained` into a fresh directory that then replaces `target` (never half-written)."""
    staging = target.with_name(f".{target.name}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    peft_model.save_pretrained(str(staging))
    make_readable(staging)
    if target.exists():
        retired = target.with_name(f".{target.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        target.rename(retired)
        staging.rename(target)
        shutil.rmtree(retired)
    else:
        staging.rename(target)


def load_with_lora_adapter(
    path: Path, base: str | Path | None, load_base: Callable[[Path], nn.Module], trainable: bool, what: str
) -> PeftModel:
    """The base model of `path/lora_adapter` (`base`, default its recorded base directory) with the adapter applied.

    Args:
        load_base: loads the base model from a directory.
        trainable: load the LoRA weights trainable (to continue training).
        what: the kind of model, for error messages (e.g. "VLA").
    """
    adapter_dir = path / LORA_DIR
    if base is None:
        base = _recorded_base(path, json.loads((adapter_dir / "adapter_config.json").read_text()))
    if base is None or not Path(base).is_dir():
        raise MissingInputError(
            f"{path} holds only a LoRA adapter; its base {what} {str(base)!r} is not a local directory. Pass "
            f"base=<local copy of the checkpoint the run started from> (--backbone.base)"
        )
    return PeftModel.from_pretrained(load_base(Path(base)), adapter_dir, is_trainable=trainable)


def _recorded_base(path: Path, adapter_config: dict) -> str | None:
    """The adapter's recorded base directory; if it is gone, the `base_model/` of the run `path` lies in."""
    recorded = adapter_config.get("base_model_name_or_path")
    if recorded is not None and Path(recorded).is_dir():
        return recorded
    if recorded is not None and Path(recorded).name == BASE_MODEL_DIR:
        for directory in [path, *path.resolve().parents[:_RUN_DIR_DEPTH]]:
            if (directory / BASE_MODEL_DIR).is_dir():
                return str(directory / BASE_MODEL_DIR)
    return recorded
