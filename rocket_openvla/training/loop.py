"""The finetune job: build backbone + LoRA, teacher and ROCKET objective, then train with DDP.

One optimizer step = `optim.grad_accumulation_steps` micro-batches of `run.batch_size` samples per process. Per
micro-batch: the frozen teacher maps the batch's images to pooled targets (no grad), or, with
`teacher_cache.dir`, the targets are read from the precomputed cache (the teacher is never built); then the
DDP-wrapped `TrainStep` runs the policy (action loss) with hooks recording the student layers, and the ROCKET loss
is added.
Metrics stay on the device and are reduced once per `run.log_freq` steps; the only per-step host sync is the
non-finite-loss guard.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import draccus
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from rocket_openvla.align import RocketObjective
from rocket_openvla.backbones.base import device_autocast
from rocket_openvla.backbones.lora import BASE_MODEL_DIR
from rocket_openvla.data.config import DataConfig
from rocket_openvla.data.pipeline import RLDSDataset, build_dataset
from rocket_openvla.data.statistics import check_statistics_match
from rocket_openvla.errors import ConfigError
from rocket_openvla.normalization import STATISTICS_NAME
from rocket_openvla.teachers.cache.reader import TeacherCache
from rocket_openvla.teachers.registry import StudentView
from rocket_openvla.training.batches import BatchStream
from rocket_openvla.training.checkpoint import CheckpointManager, Resumable, TrainerState, latest_checkpoint
from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.distributed import DistributedContext, barrier, init_distributed, shutdown_distributed
from rocket_openvla.training.optim import build_optimizer
from rocket_openvla.training.rng import seed_everything
from rocket_openvla.training.run_dir import check_run_directory, record_config, run_directory
from rocket_openvla.training.step import TrainStep
from rocket_openvla.training.targets import CachedTargets, OnlineTargets, run_manifest
from rocket_openvla.training.tracking import MetricAccumulator, MetricsLogger

logger = logging.getLogger(__name__)

MERGED_DIR = "merged"


class NonFiniteLossError(RuntimeError):
    pass


def finetune(config: FinetuneConfig) -> Path:
    """Run (or resume) the job `config` describes on this process; returns the run directory."""
    context = init_distributed()
    try:
        return Trainer(config, context).train()
    finally:
        shutdown_distributed()


class Trainer:
    def __init__(self, config: FinetuneConfig, context: DistributedContext) -> None:
        config.validate()
        config.check_global_batch(context.world_size)
        self.config, self.context = config, context
        self.run_dir = run_directory(config)
        check_run_directory(config, self.run_dir)
        barrier()  # every rank has read the directory before the main process writes to it
        if context.is_main:
            record_config(config, self.run_dir)
        barrier()
        # before the models: a wrong data path fails in seconds
        self.dataset = build_rank_dataset(self.config.data, self.context)

        seed_everything(config.run.seed)  # identical initialisation on every rank
        self.rocket = config.rocket
        self.adapter = config.backbone.build()
        if self.adapter.action_chunk != config.data.num_actions_chunk:
            raise ConfigError(
                f"data.num_actions_chunk={config.data.num_actions_chunk} but the policy predicts chunks of "
                f"{self.adapter.action_chunk} actions (backbone.policy); set both to the same value"
            )
        self.targets, objective = self._build_alignment()
        lora = config.lora
        if config.backbone.random_weights and context.is_main:  # keep them: every checkpoint's policy/ needs its base
            self.adapter.save_base_model(self.run_dir / BASE_MODEL_DIR)
        if not self.adapter.has_lora:  # a backbone.pretrained run directory brings its own (trainable) adapter
            self.adapter.apply_lora(lora.rank, lora.effective_alpha, lora.dropout, lora.target_modules, lora.init)
        self.module = TrainStep(self.adapter, objective, self.rocket, self.student_layers)
        self.module.to(context.device).train()  # the teacher stays in eval mode (FrozenTeacher)
        self.model = self.module
        if context.is_distributed:
            device_ids = [context.device.index] if context.device.type == "cuda" else None
            unused = self.adapter.ddp_find_unused_parameters(self.student_layers)
            self.model = DistributedDataParallel(self.module, device_ids=device_ids, find_unused_parameters=unused)
        self.optimizer, self.scheduler = build_optimizer(config.optim, [self.module])

        seed_everything(config.run.seed + context.rank)  # per-rank runtime randomness (dropout, diffusion noise)
        self._record_statistics()
        self.collate = self.adapter.processor.collator()
        self.checkpoints = CheckpointManager(self.run_dir, context, config.run.keep_last)
        self.state = TrainerState(world_size=context.world_size)
        if config.run.resume:
            self.state = self.checkpoints.load(latest_checkpoint(self.run_dir), self._resumable())
            logger.info("resumed %s at step %d", self.run_dir, self.state.step)

    def _build_alignment(self) -> tuple[OnlineTargets | CachedTargets | None, RocketObjective | None]:
        """Where the targets come from (the frozen teacher or the cache) and the ROCKET objective; neither for the
        baseline (`rocket.coeff == 0`)."""
        rocket, config = self.rocket, self.config
        self.student_layers, self.pair_labels = [], []
        self.teacher = None  # built only when the targets come from it
        if not rocket.enabled:
            return None, None
        self.student_layers, teacher_layers = rocket.resolve_pairs(self.adapter.num_hidden_layers + 1,
                                                                   config.teacher.num_layers())
        self.pair_labels = [f"s{s}_t{t}" for s, t in zip(self.student_layers, teacher_layers)]
        if config.teacher_cache.enabled:
            cache = self._open_cache(teacher_layers)
            targets = CachedTargets(cache, teacher_layers, self.adapter.camera_grids, rocket, self.context.device)
            return targets, RocketObjective(rocket, self.adapter.hidden_size, cache.manifest["feature_dim"])
        teacher = config.teacher.build(teacher_layers, StudentView.of(self.adapter), rocket)
        self.teacher = teacher.to(self.context.device)
        return OnlineTargets(self.teacher, self.adapter), RocketObjective(rocket, self.adapter.hidden_size,
                                                                          self.teacher.feature_dim)

    def _open_cache(self, teacher_layers: list[int]) -> TeacherCache:
        """The cache, checked against this run before step 1."""
        options = self.config.teacher_cache
        cache = TeacherCache(options.dir, verify_checksums=options.verify_checksums, num_readers=options.num_readers,
                             pin_memory=self.context.device.type == "cuda")
        datasets = {name: {"version": version, "num_episodes": episodes}
                    for name, (version, episodes) in self.dataset.dataset_versions.items()}
        cache.check_run(run_manifest(self.config.teacher, self.rocket, self.config.data, datasets, teacher_layers,
                                     self.adapter.num_images))
        logger.info("teacher targets from the cache %s (%s, stride %d): the teacher is not built", cache.directory,
                    cache.manifest["dtype"], cache.stride)
        return cache

    def _resumable(self) -> Resumable:
        return Resumable(self.module, self.optimizer, self.scheduler, self.dataset, self.adapter.save_pretrained)

    def _record_statistics(self) -> None:
        statistics = self.dataset.dataset_statistics
        saved = self.run_dir / STATISTICS_NAME
        if self.config.run.resume and saved.is_file():
            check_statistics_match(json.loads(saved.read_text()), statistics)
        self.adapter.set_dataset_statistics(statistics)
        if self.context.is_main:
            self.dataset.save_dataset_statistics(self.run_dir)

    # --- the loop --------------------------------------------------------------------------------------------------
    def train(self) -> Path:
        config, context = self.config, self.context
        metrics_log = MetricsLogger(context.is_main, config.wandb.project, config.wandb.entity, config.wandb.mode,
                                    self.run_dir, self.run_dir.name, config=draccus.encode(config),
                                    resume=config.run.resume)
        members = range(self.rocket.ensemble_size)
        metrics = MetricAccumulator(labels={
            "align/pair_losses": self.pair_labels,
            "align/member_losses": [f"{pair}/member{member}" for pair in self.pair_labels for member in members],
        })
        stream = self.batches()
        progress = tqdm(total=config.run.max_steps, initial=self.state.step, disable=not context.is_main,
                        desc="finetune", dynamic_ncols=True)
        consecutive_nonfinite, steps_since_log, clock = 0, 0, time.perf_counter()
        while self.state.step < config.run.max_steps:
            step_metrics, finite, batch = self._optimizer_step(stream)
            if not finite:
                consecutive_nonfinite += 1
                self._skip_nonfinite_step(consecutive_nonfinite, batch)
                continue
            consecutive_nonfinite = 0
            metrics.update(step_metrics)
            self.state.step += 1
            steps_since_log += 1
            progress.update(1)
            done = self.state.step == config.run.max_steps
            if self.state.step % config.run.log_freq == 0 or done:
                logged = self._log_values(metrics, steps_since_log, time.perf_counter() - clock)
                metrics_log.log(logged, step=self.state.step)
                progress.set_postfix({k: f"{logged[k]:.4g}" for k in ("loss", "align/loss", "steps_per_second")
                                      if k in logged})
                steps_since_log, clock = 0, time.perf_counter()
            if self._saves_after(self.state.step):
                assert not stream.holds_samples_ahead, "a checkpoint must hold the data position of trained samples"
                self.checkpoints.save(self.state, self._resumable())
        progress.close()
        metrics_log.finish()
        if config.lora.merge_at_end and context.is_main:
            self.adapter.merge_lora()
            self.adapter.save_pretrained(self.run_dir / MERGED_DIR)
        barrier()
        return self.run_dir

    def _skip_nonfinite_step(self, consecutive: int, batch: dict[str, Any]) -> None:
        self.state.nonfinite_steps += 1
        if consecutive >= self.config.run.max_nonfinite_steps:
            raise NonFiniteLossError(
                f"{consecutive} consecutive steps with a non-finite loss at step {self.state.step}; last batch: "
                f"{_batch_summary(batch)}. Lower optim.lr, check the data statistics, or raise run.max_nonfinite_steps"
            )
        logger.warning("non-finite loss at step %d: step skipped (%d in a row)", self.state.step, consecutive)

    def _log_values(self, metrics: MetricAccumulator, steps: int, seconds: float) -> dict[str, float]:
        logged = metrics.reduce()
        logged.update({
            "lr": self.scheduler.get_last_lr()[0],
            "steps_per_second": steps / seconds,
            "samples_per_second": steps * self._global_batch() / seconds,
            "nonfinite_steps": self.state.nonfinite_steps,
        })
        return logged

    def batches(self) -> BatchStream:
        """Micro-batches of this process's data stream, with their targets, on the device."""
        return BatchStream(iter(self.dataset), self.config.run.batch_size, self.adapter.processor, self.collate,
                           self.targets, self.context.device)

    def _saves_after(self, step: int) -> bool:
        return step % self.config.run.save_freq == 0 or step == self.config.run.max_steps

    def _optimizer_step(self, stream: BatchStream) -> tuple[dict[str, torch.Tensor], bool, dict]:
        """Accumulate gradients over the micro-batches, then step (or skip on a non-finite loss on any rank).

        Each micro-batch draws the next one ahead (its cache read overlaps with this compute), except before a save.
        """
        accumulation = self.config.optim.grad_accumulation_steps
        saves = self._saves_after(self.state.step + 1)
        self.optimizer.zero_grad(set_to_none=True)
        summed: dict[str, torch.Tensor] = {}
        for micro in range(accumulation):
            last = micro == accumulation - 1
            batch, targets, target_valid = stream.next(lookahead=not (last and saves))
            no_sync = self.model.no_sync() if self.context.is_distributed and not last else contextlib.nullcontext()
            with no_sync, device_autocast(self.context.device):
                output = self.model(batch, targets, target_valid)
                (output.loss / accumulation).backward()
            for key, value in output.metrics.items():
                summed[key] = summed[key] + value / accumulation if key in summed else value / accumulation
        finite = torch.isfinite(summed["loss"]).float()
        if self.context.is_distributed:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if not bool(finite.item()):  # the per-step host sync: every rank must agree to skip
            return summed, False, batch
        max_norm = self.config.optim.max_grad_norm
        if max_norm is not None:
            summed["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.module.parameters(), max_norm)
        self.optimizer.step()
        self.scheduler.step()
        return summed, True, batch

    def _global_batch(self) -> int:
        return self.config.run.batch_size * self.context.world_size * self.config.optim.grad_accumulation_steps


def _batch_summary(batch: dict[str, Any]) -> str:
    parts = []
    for key, value in batch.items():
        if torch.is_tensor(value) and value.is_floating_point():
            value = value.float()
            parts.append(f"{key} {tuple(value.shape)} min {value.min().item():.3g} max {value.max().item():.3g} "
                         f"mean {value.mean().item():.3g} non-finite {int((~torch.isfinite(value)).sum())}")
    return "; ".join(parts)


def build_rank_dataset(config: DataConfig, context: DistributedContext) -> RLDSDataset:
    """This process's shard of the data; the main process builds first (it may generate the synthetic dataset and
    cache statistics), then the others."""
    dataset = build_dataset(config, rank=context.rank, world_size=context.world_size) if context.is_main else None
    barrier()
    return dataset if dataset is not None else build_dataset(config, rank=context.rank, world_size=context.world_size)
