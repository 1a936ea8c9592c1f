"""Seconds per training step on one process, same model and batch: baseline vs ROCKET, teacher on the fly or cached.

Rows (one optimizer step each: zero_grad, forward under the device's autocast, backward, clipping if configured,
AdamW step; the trainer's one per-step host sync, its non-finite-loss guard, is left out of every row alike):
  baseline            the action loss only (`rocket.coeff 0`: no capture, no projector)
  rocket cached       + targets from stored teacher features, as the trainer gets them from `--teacher_cache.dir`
                      once the reader threads have read the shard (they read while the previous step runs): bf16 as
                      stored, decoded to fp32 on the host, copied to the device, resampled along each camera's random
                      90 % crop onto the student's grid, plus the position term
  rocket on the fly   + the frozen teacher run on the batch's images
Also: teacher images/s, peak device memory per row (CUDA), and host syncs: the objective's forward + backward on
this step's real inputs (must be 0), and each row's forward + backward (the optimizer is left out: on CPU, AdamW reads
its step counters with `.item()`, which are host tensors and no sync on CUDA).

Sizes:
  --size tiny   configs/quickstart.yaml (tiny OpenVLA, LoRA r8, 2 pairs) with its random VGGT at 518 px, the release's
                teacher resolution (CPU)
  --size 7b     configs/paper/openvla_libero_rocket.yaml with random weights at the real shapes: OpenVLA-7B (bf16,
                LoRA r32, 2 cameras of 256 tokens, 10 pairs) and VGGT-1B (a GPU; built on the host
                first: ~35 GB of host memory)

Usage:
    python bench/bench_step.py --quick                          # tiny, CPU, ~1 minute
    python bench/bench_step.py --size 7b --device cuda --batch 8 --json step_7b.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("WANDB_MODE", "disabled")

import draccus  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402
from host_syncs import count_host_syncs  # noqa: E402
from report import SEED, Ratio, parse_args, print_ratios, settings_of, write_report  # noqa: E402
from timing import timed  # noqa: E402

from rocket_openvla.align import RocketObjective  # noqa: E402
from rocket_openvla.backbones.base import device_autocast, tensors_to  # noqa: E402
from rocket_openvla.data.augment import CROP_AREA  # noqa: E402
from rocket_openvla.teachers.cache.layout import decode_features, encode_features  # noqa: E402
from rocket_openvla.teachers.registry import StudentView  # noqa: E402
from rocket_openvla.teachers.vggt.config import VGGT_1B  # noqa: E402
from rocket_openvla.training.config import FinetuneConfig  # noqa: E402
from rocket_openvla.training.optim import build_optimizer  # noqa: E402
from rocket_openvla.training.step import TrainStep  # noqa: E402
from rocket_openvla.training.targets import CacheResampler, cache_geometry  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
CROP_SIDE = CROP_AREA ** 0.5  # the training augmentation's random square crop


def preset(size: str) -> FinetuneConfig:
    """The run the benchmark times, with random weights (nothing is downloaded)."""
    if size == "tiny":
        config = yaml.safe_load((CONFIGS / "quickstart.yaml").read_text())
        config["teacher"]["image_size"] = 518
    else:
        config = yaml.safe_load((CONFIGS / "paper" / "openvla_libero_rocket.yaml").read_text())
        config["backbone"].update(pretrained=None, size="7b")
        config["teacher"] = {"type": "vggt_random", "image_size": VGGT_1B.img_size, "embed_dim": VGGT_1B.embed_dim,
                             "depth": VGGT_1B.depth, "num_heads": VGGT_1B.num_heads,
                             "patch_embed_depth": VGGT_1B.patch_embed_depth}
    return draccus.decode(FinetuneConfig, config)


def raw_samples(count: int, num_images: int, chunk: int, seed: int = 0) -> list[dict[str, Any]]:
    """LIBERO-shaped samples as the data pipeline hands them to the processor (224 px cameras, 7-D actions)."""
    rng = np.random.default_rng(seed)
    return [{
        "images": rng.integers(0, 256, (num_images, 224, 224, 3), dtype=np.uint8),
        "instruction": "pick up the black bowl between the plate and the ramekin and place it on the plate",
        "actions": rng.uniform(-1, 1, (chunk, 7)).astype(np.float32),
        "proprio": rng.uniform(-1, 1, 8).astype(np.float32),
        "dataset_name": "libero",
    } for _ in range(count)]


def crop_boxes(batch: int, cameras: int, seed: int = 0) -> torch.Tensor:
    """`[B, V, 4]` random square crops of `CROP_AREA` (90 %) of the frame, `(y1, x1, y2, x2)` in [0, 1]."""
    corner = torch.rand(batch, cameras, 2, generator=torch.Generator().manual_seed(seed)) * (1 - CROP_SIDE)
    return torch.cat([corner, corner + CROP_SIDE], dim=-1)


def peak_memory(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


class StepBench:
    """One adapter + LoRA and one batch, stepped by each variant in turn."""

    def __init__(self, config: FinetuneConfig, batch_size: int, device: torch.device, data_seed: int = 0) -> None:
        self.config, self.device = config, device
        self.adapter = config.backbone.build()
        lora = config.lora
        self.adapter.apply_lora(lora.rank, lora.effective_alpha, lora.dropout, lora.target_modules, lora.init)
        self.adapter.policy.to(device)
        processor = self.adapter.processor
        samples = raw_samples(batch_size, self.adapter.num_images, self.adapter.action_chunk, data_seed)
        self.batch = tensors_to(processor.collator()([processor(sample) for sample in samples]), device)
        self.boxes = crop_boxes(batch_size, self.adapter.num_images)
        rocket = config.rocket
        self.student_layers, self.teacher_layers = rocket.resolve_pairs(self.adapter.num_hidden_layers + 1,
                                                                        config.teacher.num_layers())

    def teacher(self, position_term: bool) -> torch.nn.Module:
        rocket = self.config.rocket if position_term else dataclasses.replace(self.config.rocket,
                                                                              teacher_pos_embed=False)
        teacher = self.config.teacher.build(self.teacher_layers, StudentView.of(self.adapter), rocket)
        return teacher.to(self.device)

    def train_step(self, objective: RocketObjective | None) -> TrainStep:
        rocket = self.config.rocket if objective is not None else dataclasses.replace(self.config.rocket, coeff=0.0)
        layers = self.student_layers if objective is not None else []
        return TrainStep(self.adapter, objective, rocket, layers).to(self.device).train()

    def measure(self, module: TrainStep, targets: Callable[[], list[torch.Tensor] | None],
                iters: int) -> dict[str, Any]:
        """Time `iters` optimizer steps; peak memory, and the host syncs of one more forward + backward."""
        optimizer, _ = build_optimizer(self.config.optim, [module])
        max_norm = self.config.optim.max_grad_norm

        def forward_backward() -> None:
            step_targets = targets()
            with device_autocast(self.device):
                module(self.batch, step_targets).loss.backward()

        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            forward_backward()
            if max_norm is not None:
                torch.nn.utils.clip_grad_norm_(module.parameters(), max_norm)
            optimizer.step()

        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        seconds = timed(step, iters, self.device)
        row = {"seconds": statistics.median(seconds), "all_seconds": [round(s, 4) for s in seconds],
               "peak_memory_gib": peak_memory(self.device),
               "host_syncs": count_host_syncs(forward_backward, self.device)}
        optimizer.zero_grad(set_to_none=True)
        return row

    def objective_syncs(self, module: TrainStep, targets: list[torch.Tensor]) -> dict[str, Any]:
        """Host syncs of the objective alone (forward + backward) on the inputs it gets in a real step."""
        inputs = {}
        handle = module.objective.register_forward_pre_hook(
            lambda _, args: inputs.update(student=[s.detach().requires_grad_() for s in args[0]], mask=args[2]))
        with device_autocast(self.device):
            module(self.batch, targets)
        handle.remove()

        def forward_backward() -> None:
            with device_autocast(self.device):
                module.objective(inputs["student"], targets, inputs["mask"]).loss.backward()

        return count_host_syncs(forward_backward, self.device)


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def run(size: str, batch_size: int, iters: int, device: torch.device) -> tuple[dict[str, Any], list[Ratio]]:
    torch.manual_seed(SEED)
    config = preset(size)
    bench = StepBench(config, batch_size, device)
    rows: dict[str, Any] = {}
    rows["baseline"] = bench.measure(bench.train_step(None), lambda: None, iters)
    free(device)

    stored, resample = cached_features(bench)
    module = bench.train_step(RocketObjective(config.rocket, bench.adapter.hidden_size, stored[0].shape[-1]))
    rows["rocket cached"] = bench.measure(module, lambda: resample(stored, bench.boxes), iters)
    free(device)

    teacher = bench.teacher(position_term=True)
    rows["rocket on the fly"] = bench.measure(module, lambda: teacher(bench.adapter.teacher_images(bench.batch)),
                                              iters)
    images = bench.adapter.teacher_images(bench.batch)
    targets = teacher(images)
    objective_syncs = bench.objective_syncs(module, targets)
    teacher_seconds = statistics.median(timed(lambda: teacher(images), iters, device))
    results = {
        "rows": rows,
        "objective_host_syncs": objective_syncs,
        "teacher_images_per_second": batch_size * bench.adapter.num_images / teacher_seconds,
        "student_layers": bench.student_layers,
        "teacher_layers": bench.teacher_layers,
        "teacher_image_size": teacher.image_size,
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
        "sequence_length": int(bench.batch["input_ids"].shape[1]),
    }
    baseline = rows["baseline"]["seconds"]
    ratios = [
        Ratio("step: rocket on the fly / baseline", rows["rocket on the fly"]["seconds"] / baseline, "time, x"),
        Ratio("step: rocket cached / baseline", rows["rocket cached"]["seconds"] / baseline, "time, x"),
        Ratio("step: rocket on the fly / rocket cached",
              rows["rocket on the fly"]["seconds"] / rows["rocket cached"]["seconds"], "time, x (cache speed-up)"),
        Ratio("host syncs of the objective (forward + backward)", objective_syncs["count"], "count, must be 0"),
        Ratio("host syncs: rocket step - baseline step",
              rows["rocket on the fly"]["host_syncs"]["count"] - rows["baseline"]["host_syncs"]["count"],
              "count added by ROCKET"),
    ]
    if device.type == "cuda":
        ratios += [Ratio(f"peak memory: {name} / baseline",
                         rows[name]["peak_memory_gib"] / rows["baseline"]["peak_memory_gib"], "x")
                   for name in ("rocket on the fly", "rocket cached")]
    return results, ratios


def cached_features(bench: StepBench) -> tuple[list[torch.Tensor], CacheResampler]:
    """What the cache reader hands the trainer for this batch: per layer `[B, N, C]` fp32 on the host, decoded from
    what the precompute stores (the teacher without the position term, in `teacher_cache.dtype`), and the resampler
    that turns them into targets."""
    config, device = bench.config, bench.device
    teacher = bench.teacher(position_term=False)
    stored = [decode_features(**_encoded(features, config.teacher_cache.dtype))
              for features in teacher(bench.adapter.teacher_images(bench.batch))]
    stored = [features.pin_memory() if device.type == "cuda" else features for features in stored]
    resample = CacheResampler({**cache_geometry(teacher), "pooling": config.rocket.pooling},
                              bench.adapter.camera_grids, config.rocket, device)
    del teacher
    free(device)
    return stored, resample


def _encoded(features: torch.Tensor, dtype: str) -> dict[str, torch.Tensor]:
    """`encode_features`' output as `decode_features` takes it (`values`, `scale`)."""
    encoded = encode_features(features.cpu(), dtype)
    return {"values": encoded["values"], "scale": encoded.get("scale")}


def print_rows(results: dict[str, Any]) -> None:
    for name, row in results["rows"].items():
        memory = f"  peak {row['peak_memory_gib']:.1f} GiB" if row["peak_memory_gib"] is not None else ""
        print(f"  {name:18s} {row['seconds'] * 1e3:10.1f} ms/step  host syncs {row['host_syncs']['count']}{memory}")
    print(f"  teacher: {results['teacher_images_per_second']:.2f} images/s at {results['teacher_image_size']} px; "
          f"objective host syncs {results['objective_host_syncs']['count']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=("tiny", "7b"), default="tiny")
    parser.add_argument("--batch", type=int, default=4, help="samples per step (OFT's LIBERO recipe: 8 per GPU)")
    parser.add_argument("--iters", type=int, default=5, help="timed steps per row (median reported)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parse_args(parser, {"iters": 2})
    iters = args.iters
    device = torch.device(args.device)
    results, ratios = run(args.size, args.batch, iters, device)
    print(f"training step, size {args.size}, batch {args.batch}, {device}, seq {results['sequence_length']}, "
          f"median of {iters}:")
    print_rows(results)
    print_ratios(ratios)
    write_report(args.json, "step", settings_of(args), results, ratios)


if __name__ == "__main__":
    main()
