"""`EvalConfig`: a LIBERO evaluation (`vla-scripts/eval_libero.py`); parsing it imports neither LIBERO nor models."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rocket_openvla.errors import ConfigError
from rocket_openvla.eval.policies import loads_model
from rocket_openvla.eval.protocol import MAX_STEPS, NUM_STEPS_WAIT, STANDARD_SUITES

INIT_STATES_PER_TASK = 50  # every LIBERO task ships 50 initial states


@dataclass
class EvalConfig:
    """Closed-loop LIBERO evaluation with OpenVLA-OFT's protocol (defaults = the protocol)."""

    # "random", "zero", a server URL ("http://127.0.0.1:8777") or a policy directory (merged / run / checkpoint).
    policy: str = "random"
    # Suites to run: libero_spatial, libero_object, libero_goal, libero_10, libero_90.
    suites: list[str] = field(default_factory=lambda: list(STANDARD_SUITES))
    # Task indices within each suite; null: every task.
    task_ids: list[int] | None = None
    # Episodes per task, over the task's packaged initial states in order (at most 50).
    num_trials_per_task: int = INIT_STATES_PER_TASK
    # Policy steps per episode; null: the protocol's limit of the suite (220 / 280 / 300 / 520 / 400).
    max_steps: int | None = None
    # Steps of the still, gripper-open action before the policy acts (objects settle).
    num_steps_wait: int = NUM_STEPS_WAIT
    # Actions of each predicted chunk executed before the next query; null: the whole chunk (OFT: 8).
    num_open_loop_steps: int | None = None
    # Seed of the baselines' randomness (per episode: derived from it, the suite, the task and the episode).
    seed: int = 7
    # Side of the rendered camera frames; the policy resizes them to its own size.
    resolution: int = 256
    # Simulator processes running episodes in parallel; a policy directory is loaded once, in the main process.
    workers: int = 1
    # Where settings.json, episodes.jsonl, results.json and videos/ go; a rerun with the same settings resumes.
    output_dir: Path = Path("runs/eval_libero")
    # MP4 rollouts of the agent view for the first N episodes of each task (0: none).
    videos_per_task: int = 0
    # Where a policy directory runs: "cpu", "cuda", "cuda:1", ...
    device: str = "cpu"
    # Weight dtype of a policy directory: "bfloat16", "float32", "float16"; null: the run's backbone.dtype.
    dtype: str | None = None
    # Dataset whose statistics scale the actions (policy directory or server); null: the policy's only dataset.
    unnorm_key: str | None = None

    def __post_init__(self) -> None:
        if not self.suites:
            raise ConfigError("suites=[]; name at least one suite, e.g. --suites '[libero_spatial]'")
        for suite in self.suites:
            if suite not in MAX_STEPS:
                raise ConfigError(f"suites contains {suite!r}; choose from {tuple(MAX_STEPS)}")
        if not 1 <= self.num_trials_per_task <= INIT_STATES_PER_TASK:
            raise ConfigError(
                f"num_trials_per_task={self.num_trials_per_task}; use 1..{INIT_STATES_PER_TASK} (one per initial state)"
            )
        for name in ("max_steps", "num_open_loop_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name}={value}; use a positive number, or null for the protocol's value")
        for name, low in (("num_steps_wait", 0), ("resolution", 16), ("workers", 1), ("videos_per_task", 0)):
            if getattr(self, name) < low:
                raise ConfigError(f"{name}={getattr(self, name)}; use at least {low}")
        if self.task_ids is not None and (not self.task_ids or min(self.task_ids) < 0):
            raise ConfigError(f"task_ids={self.task_ids}; list task indices >= 0, or null for every task")

    def settings(self) -> dict[str, Any]:
        """The settings that decide episode outcomes: a resumed run must match them (`results.EpisodeLog`)."""
        policy = self.policy
        if loads_model(policy):
            policy = str(Path(policy).resolve())
        return {
            "policy": policy, "max_steps": self.max_steps, "num_steps_wait": self.num_steps_wait,
            "num_open_loop_steps": self.num_open_loop_steps, "seed": self.seed, "resolution": self.resolution,
            "dtype": self.dtype, "unnorm_key": self.unnorm_key,
        }
