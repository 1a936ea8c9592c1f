"""Auxiliary objectives by name. ROCKET is `rocket`; Spatial Forcing and the naive multi-layer ablation are presets
of it (they fix the projector layout the name implies). A new objective is one registered function."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from rocket_openvla.align import RocketConfig

Preset = Callable[[RocketConfig], RocketConfig]
_OBJECTIVES: dict[str, Preset] = {}


def register_objective(name: str) -> Callable[[Preset], Preset]:
    def register(preset: Preset) -> Preset:
        _OBJECTIVES[name] = preset
        return preset
    return register


def available_objectives() -> list[str]:
    return sorted(_OBJECTIVES)


def effective_rocket_config(name: str, rocket: RocketConfig) -> RocketConfig:
    """The `RocketConfig` that objective `name` trains with, given the user's `rocket` section."""
    if name not in _OBJECTIVES:
        raise ValueError(f"objective={name!r} is not registered; choose one of {available_objectives()}")
    return _OBJECTIVES[name](rocket)


@register_objective("rocket")
def rocket_objective(rocket: RocketConfig) -> RocketConfig:
    """Shared projector over all pairs (Matryoshka per `rocket.matryoshka`)."""
    return rocket


@register_objective("naive")
def naive_multi_layer(rocket: RocketConfig) -> RocketConfig:
    """One independent projector per pair (paper Table 8, "+Multi-layer")."""
    return dataclasses.replace(rocket, share_projector=False)


@register_objective("spatial_forcing")
def spatial_forcing(rocket: RocketConfig) -> RocketConfig:
    """One layer pair with its own projector (Spatial Forcing)."""
    if rocket.num_pairs != 1:
        raise ValueError(
            f"objective=spatial_forcing aligns exactly one layer pair, got rocket.student_layers="
            f"{rocket.student_layers}; e.g. --rocket.student_layers '[24]' --rocket.teacher_layers '[-1]'"
        )
    return dataclasses.replace(rocket, share_projector=False)
