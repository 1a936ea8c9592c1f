"""Fixtures for teacher tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from rocket_openvla.teachers.vggt import VGGTAggregator, VGGTAggregatorConfig

from .helpers import GOLDEN_VGGT, TINY, randomize_


@pytest.fixture
def golden_vggt_dir() -> Path:
    if not GOLDEN_VGGT.is_dir():
        pytest.fail(f"golden VGGT data not found at {GOLDEN_VGGT}; it ships with the repository (tests/fixtures)")
    return GOLDEN_VGGT


@pytest.fixture
def tiny_aggregator() -> Callable[..., VGGTAggregator]:
    """Factory: an eval-mode tiny aggregator with visible random weights."""

    def build(config: VGGTAggregatorConfig = TINY, seed: int = 0) -> VGGTAggregator:
        return randomize_(VGGTAggregator.from_config(config), seed).eval()

    return build
