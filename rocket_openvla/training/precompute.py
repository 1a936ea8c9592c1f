"""Precompute the teacher's targets for every training frame of a run's data: `vla-scripts/precompute_teacher.py`.

It reads the same config as the finetune job. Per dataset, episodes are grouped into shards of
`teacher_cache.episodes_per_shard` in the train split's file order; shard j goes to rank `j % world_size`. For every
un-augmented training frame (each chunk start, every `stride`-th), all cameras go through the backbone's own processor
and then, together, through the teacher, which pools each layer to the cache grid without the position term
(`rocket_openvla.teachers.cache.geometry`). A shard is written atomically, then its record (sha256, episodes), so a
killed precompute keeps its finished shards and redoes the rest; a shard's bytes do not depend on the number of
processes. The main process writes `manifest.json` first and `index.json` last (layout: `teachers.cache.layout`).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from rocket_openvla.data.episodes import episode_samples
from rocket_openvla.data.sources import OpenDataset, open_datasets
from rocket_openvla.errors import ConfigError
from rocket_openvla.files import save_safetensors
from rocket_openvla.teachers.cache.layout import (
    INDEX_NAME,
    MANIFEST_NAME,
    SHARDS_DIR,
    STEPS_KEY,
    acquire_lock,
    bytes_per_frame,
    encode_features,
    layer_key,
    manifest_differences,
    read_json,
    release_lock,
    scale_key,
    sha256_file,
    shard_path,
    shard_record_path,
    write_json,
)
from rocket_openvla.teachers.registry import StudentView
from rocket_openvla.training.config import FinetuneConfig
from rocket_openvla.training.distributed import DistributedContext, barrier, init_distributed, shutdown_distributed
from rocket_openvla.training.rng import seed_everything
from rocket_openvla.training.targets import cache_geometry, run_manifest

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardPlan:
    name: str  # "<dataset>-<index:05d>"
    dataset: str
    start: int  # episodes [start, stop) of the dataset's train split
    stop: int


def precompute_teacher_cache(config: FinetuneConfig) -> Path:
    """Write (or finish) the cache `config.teacher_cache.dir` on this process; returns its directory."""
    context = init_distributed()
    try:
        return CacheWriter(config, context).run()
    finally:
        shutdown_distributed()


class CacheWriter:
    def __init__(self, config: FinetuneConfig, context: DistributedContext) -> None:
        config.validate()
        options = config.teacher_cache
        if options.dir is None:
            raise ConfigError("teacher_cache.dir is not set; pass --teacher_cache.dir DIR, where the cache is written")
        if not config.rocket.enabled and options.layers is None:
            raise ConfigError("rocket.coeff is 0, so the run has no teacher layers; set rocket's pairs or "
                              "teacher_cache.layers")
        self.config, self.context, self.options = config, context, options
        self.directory = Path(options.dir)
        if context.is_main:
            (self.directory / SHARDS_DIR).mkdir(parents=True, exist_ok=True)
            acquire_lock(self.directory)
        barrier()
        self.datasets = self._open_datasets()
        seed_everything(config.run.seed)
        self.adapter = config.backbone.build()
        self.collate = self.adapter.processor.collator()
        self.layers = self._layers()
        grids = None if options.grid is None else ((options.grid,) * 2,) * self.adapter.num_images
        view = StudentView.of(self.adapter, grids)
        no_position = dataclasses.replace(config.rocket, teacher_pos_embed=False)
        self.teacher = config.teacher.build(self.layers, view, no_position).to(context.device)
        self.manifest = self._manifest()
        if context.is_main:
            self._write_or_check_manifest()
        barrier()

    def _open_datasets(self) -> dict[str, OpenDataset]:
        """The main process first (it may generate the synthetic dataset and cache statistics), then the rest."""
        datasets = open_datasets(self.config.data) if self.context.is_main else None
        barrier()
        return datasets if datasets is not None else open_datasets(self.config.data)

    def _layers(self) -> list[int]:
        """The cached teacher layers (resolved, ascending): the run's, or `teacher_cache.layers` if they hold them."""
        num_layers = self.config.teacher.num_layers()
        run_layers = []
        if self.config.rocket.enabled:
            _, run_layers = self.config.rocket.resolve_pairs(self.adapter.num_hidden_layers + 1, num_layers)
        if self.options.layers is None:
            return sorted(set(run_layers))
        if any(not -num_layers <= layer < num_layers for layer in self.options.layers):
            raise ConfigError(f"teacher_cache.layers={self.options.layers} names layers outside the teacher's "
                              f"{num_layers} (0 .. {num_layers - 1}, or negative from the end)")
        layers = sorted({layer % num_layers for layer in self.options.layers})
        missing = sorted(set(run_layers) - set(layers))
        if missing:
            raise ConfigError(f"teacher_cache.layers={self.options.layers} lacks the run's teacher layers {missing}; "
                              "list a superset of rocket.teacher_layers, or null")
        return layers

    def _manifest(self) -> dict[str, Any]:
        teacher, options = self.teacher, self.options
        datasets = {name: {"version": d.version, "num_episodes": d.num_episodes} for name, d in self.datasets.items()}
        manifest = run_manifest(self.config.teacher, self.config.rocket, self.config.data, datasets, self.layers,
                                self.adapter.num_images)
        manifest.update(
            cache_geometry(teacher),
            teacher_input=self.adapter.teacher_input_format,
            dtype=options.dtype,
            stride=options.stride,
            episodes_per_shard=options.episodes_per_shard,
        )
        return manifest

    def _write_or_check_manifest(self) -> None:
        path = self.directory / MANIFEST_NAME
        if path.is_file():
            differences = manifest_differences(read_json(path), self.manifest)
            if differences:
                release_lock(self.directory)
                raise ConfigError(
                    f"{self.directory} holds a cache made with other settings:\n  " + "\n  ".join(differences)
                    + "\nUse another teacher_cache.dir, or delete this one to start over"
                )
        else:
            write_json(path, self.manifest)

    # --- the job ---------------------------------------------------------------------------------------------------
    def plans(self) -> list[ShardPlan]:
        per_shard = self.options.episodes_per_shard
        return [
            ShardPlan(f"{name}-{start // per_shard:05d}", name, start, min(start + per_shard, dataset.num_episodes))
            for name, dataset in self.datasets.items()
            for start in range(0, dataset.num_episodes, per_shard)
        ]

    def run(self) -> Path:
        plans = self.plans()
        remaining = [plan for plan in plans if not shard_record_path(self.directory, plan.name).is_file()]
        if self.context.is_main:
            self._check_disk(plans, remaining)
        barrier()
        mine = [plan for index, plan in enumerate(plans) if index % self.context.world_size == self.context.rank
                and plan in remaining]
        progress = tqdm(mine, desc=f"precompute (rank {self.context.rank})", disable=not self.context.is_main,
                        dynamic_ncols=True)
        for plan in progress:
            frames = self._write_shard(plan)
            progress.set_postfix(frames=frames)
        barrier()
        if self.context.is_main:
            self._write_index(plans)
            release_lock(self.directory)
        barrier()
        return self.directory

    def _check_disk(self, plans: list[ShardPlan], remaining: list[ShardPlan]) -> None:
        """Print the projected size; refuse when the remaining shards do not fit on the disk."""
        frame_bytes = bytes_per_frame(len(self.layers), sum(g[0] * g[1] for g in self.teacher.grids),
                                      self.teacher.feature_dim, self.options.dtype)
        frames = {plan.name: self._frames_estimate(plan) for plan in plans}
        total, left = sum(frames.values()), sum(frames[plan.name] for plan in remaining)
        free = shutil.disk_usage(self.directory).free
        print(f"teacher cache {self.directory}: ~{total:,} frames x {frame_bytes:,} B = "
              f"{_gigabytes(total * frame_bytes)} ({len(self.layers)} layers, {self.options.dtype}, "
              f"stride {self.options.stride}); "
              f"{len(plans) - len(remaining)} of {len(plans)} shards done, {_gigabytes(left * frame_bytes)} to write, "
              f"{_gigabytes(free)} free", flush=True)
        if left * frame_bytes > free:
            release_lock(self.directory)
            raise ConfigError(
                f"the teacher cache needs ~{_gigabytes(left * frame_bytes)} more on {self.directory}, which has "
                f"{_gigabytes(free)} free; free space, choose another teacher_cache.dir, or shrink the cache "
                "(teacher_cache.dtype int8 / float8_e4m3fn, teacher_cache.stride, fewer teacher_cache.layers)"
            )

    def _frames_estimate(self, plan: ShardPlan) -> int:
        """Training frames of a shard from its dataset's step count (an upper bound: chunk ends are not drawn)."""
        dataset = self.datasets[plan.dataset]
        steps = dataset.statistics.num_transitions or 0
        return -(-steps * (plan.stop - plan.start) // (dataset.num_episodes * self.options.stride))

    @torch.no_grad()
    def _write_shard(self, plan: ShardPlan) -> int:
        """Compute and write one shard and its record; returns its number of frames."""
        stride, batch_size = self.options.stride, self.options.batch_size
        samples, episodes, steps = [], [], []
        for episode_id, episode in episode_samples(self.config.data, self.datasets[plan.dataset], plan.start,
                                                   plan.stop):
            kept = episode[::stride]
            episodes.append([episode_id, len(samples), len(kept)])
            samples.extend(kept)
            steps.extend(range(0, len(episode), stride))
        processor = self.adapter.processor
        per_layer: dict[int, list[torch.Tensor]] = {layer: [] for layer in self.layers}
        for begin in range(0, len(samples), batch_size):
            batch = self.collate([processor(sample) for sample in samples[begin:begin + batch_size]])
            images = self.adapter.teacher_images(batch).to(self.context.device)
            for layer, target in zip(self.layers, self.teacher(images)):
                per_layer[layer].append(target.cpu())
        tensors = {STEPS_KEY: torch.tensor(steps, dtype=torch.int32)}
        for layer, targets in per_layer.items():
            encoded = encode_features(torch.cat(targets) if targets else self._empty(), self.options.dtype)
            tensors[layer_key(layer)] = encoded["values"]
            if "scale" in encoded:
                tensors[scale_key(layer)] = encoded["scale"]
        path = shard_path(self.directory, plan.name)
        save_safetensors(tensors, path)
        write_json(shard_record_path(self.directory, plan.name),
                   {"sha256": sha256_file(path), "bytes": path.stat().st_size, "episodes": episodes})
        return len(samples)

    def _empty(self) -> torch.Tensor:
        return torch.zeros(0, sum(g[0] * g[1] for g in self.teacher.grids), self.teacher.feature_dim)

    def _write_index(self, plans: list[ShardPlan]) -> None:
        shards, episodes = {}, {}
        for plan in plans:
            record_path = shard_record_path(self.directory, plan.name)
            if not record_path.is_file():
                raise RuntimeError(f"shard {plan.name} was not written (did a process fail?); rerun the precompute")
            record = read_json(record_path)
            shards[plan.name] = {"sha256": record["sha256"], "bytes": record["bytes"]}
            for episode_id, first_row, rows in record["episodes"]:
                episodes[episode_id] = [plan.name, first_row, rows]
        write_json(self.directory / INDEX_NAME, {"shards": shards, "episodes": episodes})
        logger.info("teacher cache %s complete: %d shards, %d episodes", self.directory, len(shards), len(episodes))


def _gigabytes(num_bytes: float) -> str:
    return f"{num_bytes / 1e9:.2f} GB"
