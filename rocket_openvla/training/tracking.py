"""Metrics: accumulated as device tensors, reduced over steps and ranks once per log step, then sent to wandb."""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from rocket_openvla.files import write_text
from rocket_openvla.training.distributed import mean_across_ranks

METRICS_NAME = "metrics.jsonl"
WANDB_ID_NAME = "wandb_run_id"


def wandb_run_id(run_dir: Path, resume: bool) -> str:
    """The run's wandb id: the recorded one when resuming, else a new one (recorded for later resumes)."""
    path = run_dir / WANDB_ID_NAME
    if resume and path.is_file():
        return path.read_text().strip()
    run_id = secrets.token_hex(4)
    write_text(path, run_id)
    return run_id


class MetricAccumulator:
    """Sums detached metric tensors per key; `reduce()` averages them over updates and ranks with one all-reduce
    and one host transfer. Vector metrics (e.g. per-pair losses `[K]`) are expanded with `labels`."""

    def __init__(self, labels: Mapping[str, list[str]] | None = None) -> None:
        self.labels = dict(labels or {})
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0

    def update(self, metrics: Mapping[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            value = value.detach().float()
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.count += 1

    def reduce(self) -> dict[str, float]:
        """Averages since the last `reduce()` (collective under DDP: every rank must call it)."""
        if not self.sums:
            return {}
        keys = sorted(self.sums)
        flat = torch.cat([self.sums[key].flatten() for key in keys]) / self.count
        values = mean_across_ranks(flat).tolist()
        result, offset = {}, 0
        for key in keys:
            size = self.sums[key].numel()
            names = self.labels.get(key, [str(i) for i in range(size)]) if self.sums[key].dim() else [None]
            for name, value in zip(names, values[offset:offset + size]):
                result[key if name is None else f"{key}/{name}"] = value
            offset += size
        self.sums, self.count = {}, 0
        return result


class MetricsLogger:
    """On the main process: appends `{"step": ..., metrics}` lines to `<run_dir>/metrics.jsonl` and logs to wandb
    (`mode` online, offline or disabled; the WANDB_MODE variable wins). The wandb run id is kept in
    `<run_dir>/wandb_run_id`, so a resumed run continues the same wandb run."""

    def __init__(self, enabled: bool, project: str, entity: str | None, mode: str, run_dir: Path, name: str,
                 config: dict[str, Any], resume: bool = False) -> None:
        self.run = None
        self.path = run_dir / METRICS_NAME if enabled else None
        if not enabled:
            return
        import wandb

        mode = os.environ.get("WANDB_MODE", mode)
        run_id = wandb_run_id(run_dir, resume)
        self.run = wandb.init(project=project, entity=entity, mode=mode, dir=str(run_dir), name=name, config=config,
                              id=run_id, resume="allow" if resume else None)

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        if self.path is None:
            return
        with self.path.open("a") as handle:
            handle.write(json.dumps({"step": step, **metrics}) + "\n")
        if self.run is not None:
            self.run.log(dict(metrics), step=step)

    def finish(self) -> None:
        if self.run is not None:
            self.run.finish()
