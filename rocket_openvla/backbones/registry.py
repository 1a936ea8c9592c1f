"""The backbone registry: one draccus-selectable config class per VLA family (`--backbone.type openvla`).

A new backbone is one `@BackboneConfig.register_subclass("<name>")` dataclass whose `build()` returns its
`BackboneAdapter`; the training loop never branches on the family.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import draccus

from rocket_openvla.backbones.base import BackboneAdapter


@dataclass
class BackboneConfig(draccus.ChoiceRegistry, abc.ABC):
    """Base of the registered backbone configs."""

    @property
    def type(self) -> str:
        """The registered name (`--backbone.type`)."""
        return self.get_choice_name(type(self))

    @abc.abstractmethod
    def build(self) -> BackboneAdapter:
        """Build the adapter (model, heads, processor) this config describes."""


def available_backbones() -> list[str]:
    """Names that `--backbone.type` accepts."""
    return sorted(BackboneConfig.get_known_choices())
