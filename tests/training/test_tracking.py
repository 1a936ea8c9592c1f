"""Metrics logging: a resumed run continues its wandb run (same id), a new run starts another."""

import json

import pytest

from rocket_openvla.training.tracking import METRICS_NAME, WANDB_ID_NAME, MetricsLogger


@pytest.fixture
def offline_wandb(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


def log_once(run_dir, step: int, resume: bool) -> str:
    logger = MetricsLogger(True, "tests", None, "offline", run_dir, "run", config={"lr": 1e-3}, resume=resume)
    logger.log({"loss": 1.0 / step}, step=step)
    run_id = logger.run.id
    logger.finish()
    return run_id


def test_resume_continues_the_wandb_run_and_a_new_start_does_not(offline_wandb, tmp_path):
    first = log_once(tmp_path, step=1, resume=False)
    assert (tmp_path / WANDB_ID_NAME).read_text() == first
    assert log_once(tmp_path, step=2, resume=True) == first
    offline_runs = sorted(path.name for path in (tmp_path / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2 and all(name.endswith(first) for name in offline_runs)
    assert [json.loads(line)["step"] for line in (tmp_path / METRICS_NAME).read_text().splitlines()] == [1, 2]

    restarted = log_once(tmp_path, step=1, resume=False)  # --run.overwrite: a new run, a new wandb run
    assert restarted != first and (tmp_path / WANDB_ID_NAME).read_text() == restarted
