"""Layer index resolution (Python-style negative indices with range checks)."""

from __future__ import annotations

from collections.abc import Sequence

from rocket_openvla.errors import ConfigError


def resolve_layers(indices: Sequence[int], num_entries: int, name: str = "layers") -> list[int]:
    """Map Python-style indices onto `0 .. num_entries-1`.

    Student layers index Hugging Face `hidden_states` (`num_entries = n_layers + 1`: 0 = embeddings,
    k = output of block k-1, n = after the final norm); teacher layers index VGGT aggregator blocks
    (`num_entries = depth`).

    Raises:
        ValueError: an index outside `[-num_entries, num_entries)`, naming the field and the valid range.
    """
    resolved = []
    for index in indices:
        if not -num_entries <= index < num_entries:
            raise ConfigError(
                f"{name}: index {index} is out of range for {num_entries} entries; "
                f"use a value in [{-num_entries}, {num_entries - 1}] (negative indices count from the end)"
            )
        resolved.append(index % num_entries)
    return resolved
