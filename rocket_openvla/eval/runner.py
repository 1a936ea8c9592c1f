"""Running an evaluation: which episodes are left, the simulator processes, where the policy lives, progress.

    summary = evaluate(EvalConfig(policy="runs/quickstart/merged", suites=["libero_spatial"], workers=2))
    summary["suites"]["libero_spatial"]["success_rate"]

Simulators run in `workers` spawned processes, each taking shards (the pending episodes of one task) from a queue.
The baselines and server URLs are built inside each worker. A policy directory is loaded once, in this process
(a `Policy` loads TensorFlow, which cannot share a process with LIBERO's renderer): the workers send it their
observations and wait for its action chunks, so N simulators share one model (one GPU, one copy of the weights).
Each finished episode is recorded at once (`results`); a rerun into the same `output_dir` runs only the rest.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import queue
import traceback
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
from tqdm import tqdm

from rocket_openvla.errors import ConfigError
from rocket_openvla.eval.config import EvalConfig
from rocket_openvla.eval.libero import Shard, run_shard, suite_size
from rocket_openvla.eval.policies import EvalPolicy, loads_model, make_policy
from rocket_openvla.eval.results import Episode, EpisodeLog

logger = logging.getLogger(__name__)
_POLL_S = 5.0  # how often a silent wait checks that the workers are alive


def plan_shards(log: EpisodeLog, config: EvalConfig, suite_sizes: Mapping[str, int]) -> list[Shard]:
    """The unfinished episodes, cut into shards: whole tasks, or each task into up to `workers` parts when there
    are fewer tasks than workers. `suite_sizes`: the number of tasks of each suite."""
    pending = []
    for suite in config.suites:
        size = suite_sizes[suite]
        task_ids = range(size) if config.task_ids is None else config.task_ids
        for task_id in task_ids:
            if task_id >= size:
                raise ConfigError(f"task_ids contains {task_id}; {suite} has tasks 0..{size - 1}")
            episodes = log.pending(suite, task_id, config.num_trials_per_task)
            if episodes:
                pending.append((suite, task_id, episodes))
    shards = []
    for suite, task_id, episodes in pending:
        parts = min(len(episodes), max(1, math.ceil(config.workers / len(pending))))
        size = math.ceil(len(episodes) / parts)
        shards += [Shard(suite, task_id, tuple(episodes[i:i + size])) for i in range(0, len(episodes), size)]
    return shards


class HostedPolicy(EvalPolicy):
    """A worker's view of the policy in the parent process: requests go to `inbox`, chunks come back on `reply`."""

    def __init__(self, index: int, inbox: Any, reply: Any) -> None:
        self.index, self.inbox, self.reply = index, inbox, reply

    def act(self, frames: Mapping[str, np.ndarray], state: np.ndarray, instruction: str) -> np.ndarray:
        self.inbox.put(("act", self.index, dict(frames), state, instruction))
        return self.reply.get()


def _worker(index: int, config: EvalConfig, hosted: bool, shards: Any, inbox: Any, reply: Any) -> None:
    try:
        if hosted:
            policy = HostedPolicy(index, inbox, reply)
        else:
            policy = make_policy(config.policy, unnorm_key=config.unnorm_key)
        while (shard := shards.get()) is not None:
            for episode in run_shard(shard, policy, config):
                inbox.put(("episode", episode))
        inbox.put(("done", index))
    except BaseException:  # reported by the parent, which stops the run
        inbox.put(("error", traceback.format_exc()))


def run_workers(shards: list[Shard], config: EvalConfig, policy: EvalPolicy | None) -> Iterator[Episode]:
    """Run the shards in worker processes, yielding episodes as they finish. `policy`: the policy to host here
    (None: each worker builds `config.policy` itself)."""
    context = multiprocessing.get_context("spawn")  # EGL contexts and CUDA do not survive fork
    shard_queue, inbox = context.Queue(), context.Queue()
    count = min(config.workers, len(shards))
    for shard in [*shards, *[None] * count]:
        shard_queue.put(shard)
    replies = [context.Queue() for _ in range(count)]
    processes = [
        context.Process(target=_worker, args=(i, config, policy is not None, shard_queue, inbox, replies[i]),
                        daemon=True)
        for i in range(count)
    ]
    for process in processes:
        process.start()
    try:
        running = count
        while running:
            try:
                message = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"an evaluation worker died (exit code {dead[0]})") from None
                continue
            kind = message[0]
            if kind == "act":
                _, index, frames, state, instruction = message
                replies[index].put(policy.act(frames, state, instruction))
            elif kind == "episode":
                yield message[1]
            elif kind == "done":
                running -= 1
            else:
                raise RuntimeError(f"an evaluation worker failed:\n{message[1]}")
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
            process.join()


def evaluate(config: EvalConfig, policy: EvalPolicy | None = None) -> dict[str, Any]:
    """Run the unfinished episodes of `config` and return the `results.json` summary (`results` module).

    Args:
        policy: an already built policy to query instead of loading `config.policy` (hosted in this process).
    """
    sizes = {suite: suite_size(suite) for suite in config.suites}  # fails first, with the fix, without LIBERO
    log = EpisodeLog(config.output_dir, config.settings())
    shards = plan_shards(log, config, sizes)
    if not shards:
        logger.info("every episode in %s is finished already", config.output_dir)
        return log.write_summary()
    if policy is None and loads_model(config.policy):
        policy = make_policy(config.policy, config.device, config.dtype, config.unnorm_key)
    total = sum(len(shard.episodes) for shard in shards)
    with tqdm(total=total, desc="LIBERO episodes", unit="episode") as progress:
        for episode in run_workers(shards, config, policy):
            log.record(episode)
            progress.update()
            progress.set_postfix(success=f"{sum(e.success for e in log.episodes.values())}/{len(log.episodes)}")
    return log.write_summary()
