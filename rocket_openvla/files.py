"""Writing our own files: atomically (a temporary name, then a rename) and with ordinary permissions.

`safetensors.save_file` and `tempfile.mkstemp` create files readable by their owner only (0600); everything we write
is meant to be shared (checkpoints, policies, statistics), so files get `0666 & ~umask` (0644 under the usual umask).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file


def _process_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_process_umask()


def make_readable(path: str | Path) -> None:
    """Give a file we wrote the ordinary mode; for a directory, every file below it."""
    path = Path(path)
    files = [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path]
    for file in files:
        os.chmod(file, FILE_MODE)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` for a temporary path beside `path`, then give it the ordinary mode and rename it to `path`.

    A crash at any point leaves either the previous file or the new one, never a half-written one.
    """
    path = Path(path)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        write(temporary)
        make_readable(temporary)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: str | Path, text: str) -> None:
    """Atomically write a text file."""
    atomic_write(path, lambda temporary: temporary.write_text(text))


def save_safetensors(
    tensors: Mapping[str, torch.Tensor], path: str | Path, metadata: dict[str, str] | None = None
) -> None:
    """Atomically write a safetensors file with the ordinary mode."""
    atomic_write(path, lambda temporary: save_file(dict(tensors), str(temporary), metadata=metadata))
