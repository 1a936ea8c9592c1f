"""The backbone registry: one draccus-selectable config class per VLA family (`--backbone.type openvla`).

A new backbone is one `@BackboneConfig.register_subclass("<name>")` dataclass whose `build()` returns its
`BackboneAdapter`; the training loop never branches on the family. Config classes import no model code: `build()`
imports it, so parsing and validating a config stays fast.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import draccus

if TYPE_CHECKING:
    from rocket_openvla.backbones.base import BackboneAdapter

from rocket_openvla.errors import ConfigError

SpecT = TypeVar("SpecT")
DEFAULT_BACKBONE = "openvla"
WEIGHT_DTYPES = ("float32", "bfloat16", "float16")  # `backbone.dtype` names (null: as the checkpoint stores them)


@dataclass
class BackboneConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of the registered backbone configs."""

    @classmethod
    def default_choice_name(cls) -> str:
        return DEFAULT_BACKBONE

    @property
    def type(self) -> str:
        """The registered name (`--backbone.type`)."""
        return self.get_choice_name(type(self))

    @property
    def random_weights(self) -> bool:
        """The model is built with random weights (no `pretrained` checkpoint); a run then keeps them as its base."""
        return getattr(self, "pretrained", None) is None

    # Fields that name files outside a saved policy directory (a tokenizer or processor directory).
    side_file_fields: ClassVar[tuple[str, ...]] = ()

    def for_policy_dir(self, path: str | Path, base: str | Path | None = None) -> BackboneConfig:
        """This config, with everything read from the saved policy directory `path` (merged weights, or a LoRA
        adapter over `base`, default the base the adapter records): its policy_config.json, tokenizer, processor."""
        names = {f.name for f in fields(self)}
        cleared = {name: None for name in ("policy", *self.side_file_fields) if name in names}
        return dataclasses.replace(self, pretrained=str(path), base=None if base is None else str(base), **cleared)

    def validate(self) -> None:
        """Checks that need no model or files; raise `ConfigError` naming the field, the value and the fix."""

    @abc.abstractmethod
    def build(self) -> BackboneAdapter:
        """Build the adapter (model, heads, processor) this config describes."""


def available_backbones() -> list[str]:
    """Names that `--backbone.type` accepts."""
    return sorted(BackboneConfig.get_known_choices())


def spec_from_dict(spec_class: type[SpecT], values: Mapping[str, Any]) -> SpecT:
    """A backbone's policy spec (a dataclass) from its `policy_config.json`, refusing keys it does not know."""
    known = {f.name for f in fields(spec_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown {spec_class.__name__} keys {unknown} in policy_config.json; known: {sorted(known)}")
    return spec_class(**values)
