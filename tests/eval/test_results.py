"""Results bookkeeping: the summary schema, resuming (finished episodes are not rerun), settings that must match,
and how unfinished episodes are cut into shards for the worker processes."""

import json

import draccus
import pytest

from rocket_openvla.errors import ConfigError
from rocket_openvla.eval.config import EvalConfig
from rocket_openvla.eval.libero import Shard
from rocket_openvla.eval.results import EPISODES_NAME, RESULTS_NAME, Episode, EpisodeLog, summarize
from rocket_openvla.eval.runner import plan_shards

SETTINGS = EvalConfig().settings()


def episode(suite, task_id, index, success, steps=50):
    return Episode(suite, task_id, f"task {task_id}", index, success, steps, 1.5)


def test_the_summary_counts_per_task_per_suite_and_in_total():
    episodes = [episode("libero_spatial", 0, i, i < 3, steps=10 * (i + 1)) for i in range(4)]  # 3 / 4
    episodes += [episode("libero_spatial", 1, i, False) for i in range(4)]  # 0 / 4
    episodes += [episode("libero_goal", 2, i, True) for i in range(2)]  # 2 / 2
    summary = summarize(reversed(episodes), SETTINGS)
    spatial = summary["suites"]["libero_spatial"]
    assert spatial["tasks"]["0"] == {"task": "task 0", "success_rate": 0.75, "successes": 3, "episodes": 4,
                                     "mean_steps": 25.0}
    assert (spatial["success_rate"], spatial["successes"], spatial["episodes"]) == (3 / 8, 3, 8)
    assert summary["suites"]["libero_goal"]["success_rate"] == 1.0
    assert summary["total"] == {"success_rate": 0.5, "successes": 5, "episodes": 10,
                                "mean_suite_success_rate": (3 / 8 + 1.0) / 2}
    assert summary["settings"] == SETTINGS
    json.dumps(summary)  # plain JSON


def test_a_rerun_resumes_with_the_finished_episodes_and_a_crash_cut_line_is_rerun(tmp_path):
    log = EpisodeLog(tmp_path, SETTINGS)
    assert log.pending("libero_goal", 3, 4) == [0, 1, 2, 3]
    log.record(episode("libero_goal", 3, 0, True))
    log.record(episode("libero_goal", 3, 2, False))
    with open(tmp_path / EPISODES_NAME, "a") as file:
        file.write('{"suite": "libero_goal", "task_id": 3, "task": "ta')  # killed mid-write
    resumed = EpisodeLog(tmp_path, SETTINGS)
    assert resumed.pending("libero_goal", 3, 4) == [1, 3]
    assert resumed.pending("libero_goal", 4, 2) == [0, 1]
    results = json.loads((tmp_path / RESULTS_NAME).read_text())
    assert results["suites"]["libero_goal"]["tasks"]["3"]["episodes"] == 2


def test_resuming_with_other_settings_is_refused_naming_what_changed(tmp_path):
    EpisodeLog(tmp_path, SETTINGS)
    with pytest.raises(ConfigError, match=r"seed: 7 -> 8.*choose another output_dir"):
        EpisodeLog(tmp_path, {**SETTINGS, "seed": 8})


def test_unfinished_episodes_are_sharded_by_task_and_split_when_workers_outnumber_tasks(tmp_path):
    log = EpisodeLog(tmp_path, SETTINGS)
    log.record(episode("libero_object", 1, 0, True))
    sizes = {"libero_object": 10, "libero_10": 10}
    config = EvalConfig(suites=["libero_object"], task_ids=[1, 2], num_trials_per_task=3, workers=2)
    assert plan_shards(log, config, sizes) == [Shard("libero_object", 1, (1, 2)), Shard("libero_object", 2, (0, 1, 2))]
    config = EvalConfig(suites=["libero_10"], task_ids=[0], num_trials_per_task=5, workers=2)
    assert plan_shards(log, config, sizes) == [Shard("libero_10", 0, (0, 1, 2)), Shard("libero_10", 0, (3, 4))]
    config = EvalConfig(suites=["libero_object"], task_ids=[1], num_trials_per_task=1)
    assert plan_shards(log, config, sizes) == []
    assert len(plan_shards(log, EvalConfig(suites=["libero_10"], num_trials_per_task=2), sizes)) == 10
    with pytest.raises(ConfigError, match="task_ids contains 10; libero_10 has tasks 0..9"):
        plan_shards(log, EvalConfig(suites=["libero_10"], task_ids=[10]), sizes)


def test_the_config_parses_from_the_command_line_and_refuses_bad_values_with_the_fix(tmp_path):
    config = draccus.parse(EvalConfig, args=["--policy", "zero", "--suites", "[libero_goal, libero_10]",
                                             "--task_ids", "[0, 3]", "--max_steps", "30"])
    assert (config.suites, config.task_ids) == (["libero_goal", "libero_10"], [0, 3])
    assert (config.policy, config.max_steps, config.seed) == ("zero", 30, 7)
    assert EvalConfig(policy=str(tmp_path / "x" / ".." / "p")).settings()["policy"] == str(tmp_path / "p")
    for values, message in [
        ({"suites": ["libero_100"]}, "suites contains 'libero_100'"),
        ({"num_trials_per_task": 51}, "num_trials_per_task=51; use 1..50"),
        ({"max_steps": 0}, "max_steps=0"),
        ({"workers": 0}, "workers=0; use at least 1"),
        ({"task_ids": [-1]}, "task_ids=\\[-1\\]"),
    ]:
        with pytest.raises(ConfigError, match=message):
            EvalConfig(**values)
