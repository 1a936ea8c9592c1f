"""Storage encodings, sizes, manifest comparison and the writer's lock."""

import os
import subprocess

import pytest
import torch

from rocket_openvla.errors import ConfigError
from rocket_openvla.teachers.cache.layout import (
    LOCK_NAME,
    acquire_lock,
    bytes_per_frame,
    decode_features,
    encode_features,
    manifest_differences,
    release_lock,
)


@pytest.mark.parametrize(("dtype", "tolerance"), [
    ("float32", 0.0), ("bfloat16", 2**-8), ("float16", 2**-11), ("int8", 0.02), ("float8_e4m3fn", 0.08),
])
def test_encodings_round_trip_within_their_precision(dtype, tolerance):
    features = torch.randn(3, 10, 64) * torch.logspace(-3, 3, 10)[None, :, None]  # tokens of very different scales
    encoded = encode_features(features, dtype)
    decoded = decode_features(encoded["values"], encoded.get("scale"))
    error = (decoded - features).norm(dim=-1) / features.norm(dim=-1)  # per token
    assert error.max() <= tolerance
    assert ("scale" in encoded) == (dtype in ("int8", "float8_e4m3fn"))
    zero = encode_features(torch.zeros(1, 2, 8), dtype)
    assert torch.equal(decode_features(zero["values"], zero.get("scale")), torch.zeros(1, 2, 8))


def test_bytes_per_frame_of_the_paper_set_up():
    # 10 pairs x 2 cameras x 16 x 16 tokens x 2048 channels
    assert bytes_per_frame(10, 512, 2048, "bfloat16") == 10 * 512 * 2048 * 2
    assert bytes_per_frame(10, 512, 2048, "int8") == 10 * 512 * (2048 + 4)


def test_manifest_differences_name_each_differing_field():
    cache = {"teacher": {"type": "vggt", "seed": 0}, "dtype": "bfloat16", "image_size": 224}
    run = {"teacher": {"type": "vggt", "seed": 1}, "image_size": 224}
    assert manifest_differences(cache, run) == ["teacher.seed: cache=0, this run=1"]  # dtype: only the cache has it


def test_one_writer_per_cache_and_stale_locks_are_taken_over(tmp_path):
    acquire_lock(tmp_path)
    with pytest.raises(ConfigError, match=f"process {os.getpid()}"):
        acquire_lock(tmp_path)
    release_lock(tmp_path)
    finished = subprocess.Popen(["sleep", "0"])
    finished.wait()  # a process of this host that has exited (and been reaped)
    (tmp_path / LOCK_NAME).write_text(f'{{"host": "{os.uname().nodename}", "pid": {finished.pid}}}')
    acquire_lock(tmp_path)  # the dead owner's lock is replaced
    assert f'"pid": {os.getpid()}' in (tmp_path / LOCK_NAME).read_text()
