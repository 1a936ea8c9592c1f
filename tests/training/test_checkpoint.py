"""Checkpoints are atomic: a crash while writing leaves the previous one complete, pointed to and resumable."""

import pytest

from rocket_openvla.training.checkpoint import CHECKPOINTS_DIR, latest_checkpoint
from rocket_openvla.training.loop import Trainer

from .conftest import load_config
from .test_trainer import SINGLE


def test_crash_during_checkpoint_write_keeps_previous_checkpoint(rlds_root, tmp_path):
    runs = tmp_path / "runs"
    trainer = Trainer(load_config(rlds_root, runs, run={"max_steps": 2}), SINGLE)
    run_dir = trainer.train()
    assert latest_checkpoint(run_dir).name == "step_00000002"

    def crash_midway(path):
        path.mkdir(parents=True)
        (path / "half_written.bin").write_bytes(b"\0" * 1024)
        raise OSError("disk full")

    trainer.config.run.max_steps = 4
    trainer.adapter.save_pretrained = crash_midway
    with pytest.raises(OSError, match="disk full"):
        trainer.train()
    assert latest_checkpoint(run_dir).name == "step_00000002"
    assert not (run_dir / CHECKPOINTS_DIR / "step_00000004").exists()

    resumed = Trainer(load_config(rlds_root, runs, run={"max_steps": 4, "resume": True}), SINGLE)
    assert resumed.state.step == 2
    resumed.train()
    assert latest_checkpoint(run_dir).name == "step_00000004"


def test_keep_last_prunes_old_checkpoints(rlds_root, tmp_path):
    trainer = Trainer(load_config(rlds_root, tmp_path / "runs", run={"max_steps": 3, "save_freq": 1, "keep_last": 2}),
                      SINGLE)
    run_dir = trainer.train()
    kept = sorted(p.name for p in (run_dir / CHECKPOINTS_DIR).glob("step_*"))
    assert kept == ["step_00000002", "step_00000003"]
    for name in ("trainable.safetensors", "optimizer.safetensors", "optimizer.json", "scheduler.json",
                 "trainer_state.json", "config.yaml", "rank_000/rng.json", "rank_000/data/data_state.json",
                 "policy/dataset_statistics.json", "policy/lora_adapter/adapter_model.safetensors"):
        assert (run_dir / CHECKPOINTS_DIR / "step_00000003" / name).is_file(), name
    assert (run_dir / "config.yaml").is_file() and (run_dir / "dataset_statistics.json").is_file()


def test_checkpoint_from_other_world_size_is_refused(rlds_root, tmp_path):
    runs = tmp_path / "runs"
    Trainer(load_config(rlds_root, runs, run={"max_steps": 1}), SINGLE).train()
    state_file = runs / "test" / CHECKPOINTS_DIR / "step_00000001" / "trainer_state.json"
    state_file.write_text(state_file.read_text().replace('"world_size": 1', '"world_size": 2'))
    with pytest.raises(ValueError, match="written by 2 processes but this run has 1"):
        Trainer(load_config(rlds_root, runs, run={"max_steps": 2, "resume": True}), SINGLE)
