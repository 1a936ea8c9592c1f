"""Our files are written atomically and get ordinary permissions (0644 under the usual umask), not 0600."""

import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from rocket_openvla.files import FILE_MODE, atomic_write, make_readable, save_safetensors, write_text


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_file_mode_follows_the_umask():
    umask = os.umask(0o022)
    os.umask(umask)
    assert FILE_MODE == 0o666 & ~umask


def test_safetensors_and_text_get_the_ordinary_mode(tmp_path):
    save_safetensors({"weight": torch.arange(3.0)}, tmp_path / "weights.safetensors")
    write_text(tmp_path / "config.json", "{}")
    assert mode(tmp_path / "weights.safetensors") == mode(tmp_path / "config.json") == FILE_MODE
    assert torch.equal(load_file(tmp_path / "weights.safetensors")["weight"], torch.arange(3.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "weights.safetensors"]  # no temporaries


def test_a_failed_write_keeps_the_previous_file(tmp_path):
    write_text(tmp_path / "latest", "step_1")

    def crash(path):
        path.write_text("step_")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "latest", crash)
    assert (tmp_path / "latest").read_text() == "step_1" and [p.name for p in tmp_path.iterdir()] == ["latest"]


def test_make_readable_fixes_files_written_by_libraries(tmp_path):
    (tmp_path / "adapter").mkdir()
    private = tmp_path / "adapter" / "adapter_model.safetensors"
    private.write_bytes(b"x")
    os.chmod(private, 0o600)
    make_readable(tmp_path / "adapter")
    assert mode(private) == FILE_MODE
