"""The teacher-cache precompute and reader on a generated dataset: exact targets, keys, stride, resume, bad input.

`teacher_cache` (conftest) is a float32 cache of the whole dataset written by one uninterrupted process."""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rocket_openvla.data.episodes import episode_samples
from rocket_openvla.errors import ConfigError, MissingInputError
from rocket_openvla.teachers.cache import CacheCorruptedError, TeacherCache
from rocket_openvla.teachers.cache.layout import INDEX_NAME, LOCK_NAME, SHARDS_DIR, shard_path
from rocket_openvla.teachers.registry import StudentView
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.precompute import CacheWriter

from .conftest import load_config, tiny_config_dict, write_config

SINGLE = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
ENTRY = Path(__file__).resolve().parents[2] / "vla-scripts" / "precompute_teacher.py"


def _config(rlds_root, tmp_path, cache_dir, **cache):
    return load_config(rlds_root, tmp_path / "runs", teacher_cache={"dir": str(cache_dir), **cache},
                       data={"image_aug": False})


def _samples(config, writer, count: int = 6):
    dataset = next(iter(writer.datasets.values()))
    episodes = list(episode_samples(config.data, dataset, 0, 2))
    return [sample for _, samples in episodes for sample in samples][:count]


def test_cached_targets_equal_the_teachers_after_the_same_rounding(teacher_cache):
    # float32 storage: the cache holds exactly what the teacher computes (another dtype: its rounding of that)
    config, writer = teacher_cache
    samples = _samples(config, writer) + _samples(config, writer, 40)[-3:]  # two episodes, different shards' rows
    cache = TeacherCache(config.teacher_cache.dir)
    read = cache.read([(s["episode_id"], s["step"]) for s in samples], writer.layers)
    assert read.valid.all()
    adapter = writer.adapter
    view = StudentView(adapter.camera_grids, adapter.num_images, adapter.teacher_input_format,
                       adapter.pixel_normalization)
    teacher = config.teacher.build(writer.layers, view, dataclasses.replace(config.rocket, teacher_pos_embed=False))
    batch = writer.collate([adapter.processor(sample) for sample in samples])
    for cached, target in zip(read.features, teacher(adapter.teacher_images(batch))):
        assert torch.equal(cached, target)
    assert cache.manifest["layers"] == writer.layers == [0, 1]
    assert cache.manifest["datasets"]["synthetic_libero_no_noops"]["num_episodes"] == 8


def test_every_training_frame_is_cached_under_its_key(teacher_cache):
    config, writer = teacher_cache
    cache = TeacherCache(config.teacher_cache.dir)
    dataset = next(iter(writer.datasets.values()))
    frames = 0
    for episode_id, samples in episode_samples(config.data, dataset, 0, dataset.num_episodes):
        shard, first_row, rows = cache.episodes[episode_id]
        assert rows == len(samples)
        steps = load_file(shard_path(cache.directory, shard))["steps"]
        assert steps[first_row:first_row + rows].tolist() == [s["step"] for s in samples] == list(range(rows))
        frames += rows
    assert len(cache.episodes) == dataset.num_episodes and frames > 100
    with pytest.raises(MissingInputError, match=r"lacks 2 of 3 frames .* from 1 episodes: nowhere steps \[0, 3\]"):
        cache.read([("nowhere", 0), (next(iter(cache.episodes)), 0), ("nowhere", 3)], [0])


def test_stride_keeps_every_kth_frame_and_masks_the_rest(rlds_root, tmp_path, teacher_cache):
    config = _config(rlds_root, tmp_path, tmp_path / "strided", stride=3, dtype="int8", layers=[1, 0, -1])
    writer = CacheWriter(config, SINGLE)
    writer.run()
    cache, full = TeacherCache(tmp_path / "strided"), TeacherCache(teacher_cache[0].teacher_cache.dir)
    episode = next(iter(cache.episodes))
    assert cache.episodes[episode][2] == -(-full.episodes[episode][2] // 3)
    keys = [(episode, step) for step in range(7)]
    strided, reference = cache.read(keys, [0, 1]), full.read(keys, [0, 1])
    assert strided.valid.tolist() == [True, False, False, True, False, False, True]
    for int8, exact in zip(strided.features, reference.features):
        assert torch.equal(int8[~strided.valid], torch.zeros_like(int8[~strided.valid]))
        kept = strided.valid
        error = (int8[kept] - exact[kept]).norm(dim=-1) / exact[kept].norm(dim=-1)
        assert error.max() < 0.02  # int8 with per-token scales
    assert cache.manifest["layers"] == [0, 1]  # -1 is the tiny teacher's last layer, 1
    size = sum(shard_path(cache.directory, name).stat().st_size for name in cache.shards)
    full_size = sum(shard_path(full.directory, name).stat().st_size for name in full.shards)
    assert size < full_size / 10  # a third of the frames at a quarter of the bytes (plus scales)


def test_bad_caches_are_refused_with_the_reason(rlds_root, tmp_path, teacher_cache):
    config, _ = teacher_cache
    source = Path(config.teacher_cache.dir)
    copy = tmp_path / "copy"
    subprocess.run(["cp", "-r", str(source), str(copy)], check=True)
    shard = sorted((copy / SHARDS_DIR).glob("*.safetensors"))[0]
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF
    shard.write_bytes(bytes(data))  # same size, other bytes
    cache = TeacherCache(copy)
    episode = next(e for e, entry in cache.episodes.items() if entry[0] == shard.stem)
    with pytest.raises(CacheCorruptedError, match=shard.stem):
        cache.read([(episode, 0)], [0])
    assert TeacherCache(copy, verify_checksums=False).read([(episode, 0)], [0]).valid.all()  # the check is the guard
    shard.write_bytes(bytes(data[:-100]))
    with pytest.raises(CacheCorruptedError, match=f"{shard.name} .* expected"):
        TeacherCache(copy)
    (copy / LOCK_NAME).write_text(f'{{"host": "{os.uname().nodename}", "pid": {os.getpid()}}}')
    with pytest.raises(ConfigError, match="being written by process"):
        TeacherCache(copy)
    (copy / LOCK_NAME).unlink()
    (copy / INDEX_NAME).unlink()
    with pytest.raises(MissingInputError, match="incomplete"):
        TeacherCache(copy)
    # resuming a precompute with other settings
    with pytest.raises(ConfigError, match=r"other settings:\n  dtype: cache=\"float32\", this run=\"bfloat16\""):
        CacheWriter(_config(rlds_root, tmp_path, source), SINGLE)
    with pytest.raises(ConfigError, match="lacks the run's teacher layers"):
        CacheWriter(_config(rlds_root, tmp_path, tmp_path / "other", layers=[1]), SINGLE)


def test_not_enough_disk_is_refused_before_writing(rlds_root, tmp_path, monkeypatch):
    import shutil

    writer = CacheWriter(_config(rlds_root, tmp_path, tmp_path / "cache"), SINGLE)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(ConfigError, match=r"needs ~0\.\d+ GB more .* 0\.00 GB free"):
        writer.run()
    assert not list((tmp_path / "cache" / SHARDS_DIR).glob("*.safetensors"))
    assert not (tmp_path / "cache" / LOCK_NAME).exists()


def test_two_processes_killed_and_resumed_write_the_single_process_cache(rlds_root, tmp_path, teacher_cache):
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
    config = write_config(tmp_path / "config.yaml", tiny_config_dict(rlds_root, tmp_path / "runs",
                                                                      data={"image_aug": False}))
    two = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", str(ENTRY),
           "--config_path", str(config), "--teacher_cache.dir", str(tmp_path / "two"), "--teacher_cache.dtype",
           "float32"]
    killed = subprocess.Popen(two, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "two" / SHARDS_DIR).glob("*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    # SIGKILL torchrun and its workers (they run in sessions of their own): every command line naming the cache
    subprocess.run(["pkill", "-KILL", "-f", str(tmp_path / "two")], check=False)
    killed.wait()
    done = len(list((tmp_path / "two" / SHARDS_DIR).glob("*.json")))
    assert 1 <= done < 8 and not (tmp_path / "two" / INDEX_NAME).exists()  # killed midway, its lock left behind
    # resumed (here in one process, taking over the dead process's lock): the finished shards are kept
    kept = {path.name: path.stat().st_mtime_ns for path in (tmp_path / "two" / SHARDS_DIR).glob("*.json")}
    CacheWriter(_config(rlds_root, tmp_path, tmp_path / "two", dtype="float32"), SINGLE).run()
    assert all((tmp_path / "two" / SHARDS_DIR / name).stat().st_mtime_ns == mtime for name, mtime in kept.items())
    single = Path(teacher_cache[0].teacher_cache.dir)  # one uninterrupted single-process run
    names = sorted(path.name for path in (single / SHARDS_DIR).glob("*.safetensors"))
    assert len(names) == 8
    for name in names:
        resumed, reference = load_file(tmp_path / "two" / SHARDS_DIR / name), load_file(single / SHARDS_DIR / name)
        assert resumed.keys() == reference.keys()
        assert all(torch.equal(resumed[key], reference[key]) for key in reference)
    assert (tmp_path / "two" / INDEX_NAME).read_text() == (single / INDEX_NAME).read_text()
