"""Bookkeeping of an evaluation: one line per finished episode, the settings it ran under, the summary.

An output directory holds:
- `settings.json`: the settings that decide the outcome of an episode (policy, seed, step limits, ...). A rerun
  into the same directory must use the same settings; then it resumes.
- `episodes.jsonl`: one JSON object per finished episode, appended as it finishes, so an interrupted run loses
  only the episodes in flight: `{"suite", "task_id", "task", "episode", "success", "steps", "seconds", "video"}`
  (`steps`: policy steps taken, wait steps excluded; `video`: the MP4's path relative to the directory, or null).
- `results.json`, rewritten after every episode:
  ```
  {"settings": {...},
   "suites": {"<suite>": {"success_rate": s / n, "successes": s, "episodes": n,
                          "tasks": {"<task_id>": {"task": "<instruction>", "success_rate", "successes", "episodes",
                                                  "mean_steps"}}}},
   "total": {"success_rate": over all episodes, "successes", "episodes",
             "mean_suite_success_rate": the average of the suites' rates (what papers report)}}
  ```
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rocket_openvla.errors import ConfigError
from rocket_openvla.files import write_text

SETTINGS_NAME, EPISODES_NAME, RESULTS_NAME = "settings.json", "episodes.jsonl", "results.json"


@dataclass(frozen=True)
class Episode:
    """The outcome of one episode (module docstring)."""

    suite: str
    task_id: int
    task: str
    episode: int
    success: bool
    steps: int
    seconds: float
    video: str | None = None

    @property
    def key(self) -> tuple[str, int, int]:
        return self.suite, self.task_id, self.episode


class EpisodeLog:
    """The episodes finished in an output directory, and the settings they ran under."""

    def __init__(self, directory: str | Path, settings: Mapping[str, Any]) -> None:
        self.directory = Path(directory)
        self.settings = dict(settings)
        self.directory.mkdir(parents=True, exist_ok=True)
        settings_path = self.directory / SETTINGS_NAME
        if settings_path.is_file():
            recorded = json.loads(settings_path.read_text())
            changed = {k: (recorded.get(k), v) for k, v in self.settings.items() if recorded.get(k) != v}
            if changed:
                described = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in sorted(changed.items()))
                raise ConfigError(
                    f"{self.directory} holds episodes run with other settings ({described}); pass the same settings "
                    "to resume, or choose another output_dir"
                )
        else:
            write_text(settings_path, json.dumps(self.settings, indent=2))
        self.episodes: dict[tuple[str, int, int], Episode] = {}
        path = self.directory / EPISODES_NAME
        if path.is_file():
            for line in path.read_text().splitlines():
                if line.strip():  # a line cut short by a crash is the last one and fails to parse: rerun it
                    try:
                        episode = Episode(**json.loads(line))
                    except (ValueError, TypeError):
                        continue
                    self.episodes[episode.key] = episode

    def pending(self, suite: str, task_id: int, trials: int) -> list[int]:
        """Indices of the episodes of a task (0..trials-1) not finished yet."""
        return [i for i in range(trials) if (suite, task_id, i) not in self.episodes]

    def record(self, episode: Episode) -> None:
        """Append a finished episode and rewrite `results.json`."""
        with open(self.directory / EPISODES_NAME, "a") as file:
            file.write(json.dumps(asdict(episode)) + "\n")
        self.episodes[episode.key] = episode
        self.write_summary()

    def write_summary(self) -> dict[str, Any]:
        summary = summarize(self.episodes.values(), self.settings)
        write_text(self.directory / RESULTS_NAME, json.dumps(summary, indent=2))
        return summary


def _rate(successes: int, episodes: int) -> dict[str, Any]:
    return {"success_rate": successes / episodes if episodes else 0.0, "successes": successes, "episodes": episodes}


def summarize(episodes: Iterable[Episode], settings: Mapping[str, Any]) -> dict[str, Any]:
    """The `results.json` object (module docstring) of finished episodes."""
    by_task: dict[str, dict[int, list[Episode]]] = {}
    for episode in sorted(episodes, key=lambda e: e.key):
        by_task.setdefault(episode.suite, {}).setdefault(episode.task_id, []).append(episode)
    suites = {}
    for suite, tasks in by_task.items():
        task_rows = {
            str(task_id): {
                "task": runs[0].task,
                **_rate(sum(e.success for e in runs), len(runs)),
                "mean_steps": sum(e.steps for e in runs) / len(runs),
            }
            for task_id, runs in tasks.items()
        }
        successes = sum(row["successes"] for row in task_rows.values())
        suites[suite] = {**_rate(successes, sum(row["episodes"] for row in task_rows.values())), "tasks": task_rows}
    total = _rate(sum(s["successes"] for s in suites.values()), sum(s["episodes"] for s in suites.values()))
    rates = [s["success_rate"] for s in suites.values()]
    total["mean_suite_success_rate"] = sum(rates) / len(rates) if rates else 0.0
    return {"settings": dict(settings), "suites": suites, "total": total}
