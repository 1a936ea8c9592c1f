"""Smoke tests in the real LIBERO simulator (skipped without the `[libero]` extra: `bash scripts/setup_libero.sh`):
the entry point runs one task of each standard suite with the random policy in 2 worker processes and resumes
without rerunning anything; a tiny trained-format policy acts end to end (render -> preprocess -> predict -> act)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rocket_openvla.eval.config import EvalConfig
from rocket_openvla.eval.libero import LIBERO_MISSING
from rocket_openvla.eval.policies import LocalPolicy
from rocket_openvla.eval.protocol import STANDARD_SUITES
from rocket_openvla.eval.results import EPISODES_NAME, RESULTS_NAME
from rocket_openvla.eval.runner import evaluate

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("libero") is None or importlib.util.find_spec("robosuite") is None,
    reason=LIBERO_MISSING,
)
ROOT = Path(__file__).resolve().parents[2]
STEPS = 16


def test_one_task_of_each_suite_runs_with_the_random_policy_and_a_rerun_resumes(tmp_path):
    command = [
        sys.executable, str(ROOT / "vla-scripts" / "eval_libero.py"), "--policy", "random", "--task_ids", "[0]",
        "--num_trials_per_task", "1", "--max_steps", str(STEPS), "--workers", "2", "--videos_per_task", "1",
        "--output_dir", str(tmp_path),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((tmp_path / RESULTS_NAME).read_text())
    assert sorted(results["suites"]) == sorted(STANDARD_SUITES)
    assert results["total"]["episodes"] == 4
    import cv2

    for suite in STANDARD_SUITES:
        task = results["suites"][suite]["tasks"]["0"]
        assert task["episodes"] == 1 and 1 <= task["mean_steps"] <= STEPS and task["task"]
    episodes = [json.loads(line) for line in (tmp_path / EPISODES_NAME).read_text().splitlines()]
    for episode in episodes:
        video = cv2.VideoCapture(str(tmp_path / episode["video"]))
        assert video.get(cv2.CAP_PROP_FRAME_COUNT) == episode["steps"]
        assert (video.get(cv2.CAP_PROP_FRAME_WIDTH), video.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (256, 256)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "finished already" in rerun.stderr
    assert len((tmp_path / EPISODES_NAME).read_text().splitlines()) == 4


class RecordingPolicy(LocalPolicy):
    """The real `LocalPolicy`, keeping what it was shown and what it answered."""

    def __init__(self, policy) -> None:
        super().__init__(policy)
        self.calls = []

    def act(self, frames, state, instruction):
        actions = super().act(frames, state, instruction)
        self.calls.append((frames, state, instruction, actions))
        return actions


def test_a_tiny_policy_acts_in_the_simulator_end_to_end(tmp_path):
    from rocket_openvla.deploy import Policy
    from tests.deploy.test_policy import save_policy, tiny_backbone

    save_policy(tiny_backbone("openvla"), tmp_path / "policy")
    policy = RecordingPolicy(Policy.from_pretrained(tmp_path / "policy"))
    config = EvalConfig(policy=str(tmp_path / "policy"), suites=["libero_goal"], task_ids=[0], num_trials_per_task=1,
                        max_steps=12, output_dir=tmp_path / "eval")
    summary = evaluate(config, policy)
    task = summary["suites"]["libero_goal"]["tasks"]["0"]
    assert task["episodes"] == 1
    assert len(policy.calls) == -(-int(task["mean_steps"]) // 8)  # one query per chunk of 8 actions
    frames, state, instruction, actions = policy.calls[0]
    assert instruction == task["task"]
    for camera in ("primary", "wrist"):
        assert frames[camera].shape == (256, 256, 3) and frames[camera].dtype == np.uint8
        assert frames[camera].std() > 5  # a rendered scene, not a blank frame
    assert state.shape == (8,) and np.isfinite(state).all() and 0.5 < state[2] < 1.5  # the hand above the table
    assert actions.shape == (8, 7) and np.isfinite(actions).all()
    np.testing.assert_array_equal(policy.policy.predict([frames["primary"], frames["wrist"]], instruction, state),
                                  actions)
