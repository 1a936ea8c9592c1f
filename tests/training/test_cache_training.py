"""Training from a teacher cache: no teacher is built, the losses are the on-the-fly ones, resume is exact, and a
cache made for another set-up is refused before step 1."""

import json

import pytest
import torch

from rocket_openvla.errors import ConfigError
from rocket_openvla.teachers.registry import RandomVGGTConfig
from rocket_openvla.training.distributed import DistributedContext
from rocket_openvla.training.loop import Trainer

from .conftest import load_config

SINGLE = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
STEPS = 4


@pytest.fixture
def float32_cache(teacher_cache):
    return teacher_cache[0].teacher_cache.dir


def _metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _train(rlds_root, runs, cache=None, **sections):
    run = {"max_steps": STEPS, **sections.pop("run", {})}
    config = load_config(rlds_root, runs, run=run, teacher_cache={"dir": None if cache is None else str(cache)},
                         **sections)
    return Trainer(config, SINGLE).train()


def test_training_from_the_cache_builds_no_teacher_and_matches_on_the_fly(rlds_root, tmp_path, float32_cache,
                                                                         monkeypatch):
    on_the_fly = _metrics(_train(rlds_root, tmp_path / "online", data={"image_aug": False}))

    def refuse(*args, **kwargs):
        raise AssertionError("the teacher was built")

    monkeypatch.setattr(RandomVGGTConfig, "build", refuse)
    cached = _metrics(_train(rlds_root, tmp_path / "cached", float32_cache, data={"image_aug": False}))
    assert [r["step"] for r in cached] == list(range(1, STEPS + 1))
    for online, offline in zip(on_the_fly, cached):
        # float32 targets; only the order of adding the position term differs (~1e-7)
        assert offline["align/loss"] == pytest.approx(online["align/loss"], abs=1e-5)
        assert offline["loss"] == pytest.approx(online["loss"], abs=1e-5)


def test_training_from_the_cache_with_crops_resumes_exactly(rlds_root, tmp_path, float32_cache):
    straight = _metrics(_train(rlds_root, tmp_path / "straight", float32_cache))
    _train(rlds_root, tmp_path / "resumed", float32_cache, run={"max_steps": STEPS // 2})
    resumed = _metrics(_train(rlds_root, tmp_path / "resumed", float32_cache, run={"resume": True}))
    assert [r["loss"] for r in resumed[-STEPS // 2:]] == [r["loss"] for r in straight[-STEPS // 2:]]
    assert all(0 < r["align/loss"] < 2 for r in straight)


@pytest.mark.parametrize(("sections", "message"), [
    ({"teacher": {"depth": 3}}, r"teacher\.depth: cache=2, this run=3"),
    ({"teacher": {"depth": 3}, "rocket": {"teacher_layers": [0, 2]}},
     r"layers: the run needs teacher layers \[2\], the cache holds \[0, 1\]"),
    ({"teacher": {"seed": 5}}, r"teacher\.seed: cache=0, this run=5"),
    ({"rocket": {"pooling": "area"}}, r'pooling: cache="bilinear", this run="area"'),
    ({"data": {"image_size": 192}}, r"image_size: cache=224, this run=192"),
])
def test_a_cache_for_another_set_up_is_refused_before_step_1(rlds_root, tmp_path, float32_cache, sections, message):
    config = load_config(rlds_root, tmp_path / "runs", teacher_cache={"dir": str(float32_cache)}, **sections)
    with pytest.raises(ConfigError, match=message):
        Trainer(config, SINGLE)
