"""The teacher cache: its size, how close cached targets stay under the crop augmentation, and what it saves per step.

Sections (all in one run, ratios against each other):
  size       bytes per frame for the paper's set-up (10 pairs, 2 cameras of 16 x 16 tokens, 2048 channels) in each
             storage dtype, against the release's cache layout (24 unpooled layers of 2 x 1374 tokens in float32)
  crop       crop-then-teacher (on the fly: the teacher sees the cropped image) against teacher-then-crop (the cache:
             the whole frame's features resampled along the crop), on a small random VGGT at 518 px (37 x 37 patches),
             for cache grids 16 (the student's), 32 and 37; also the cache read with the crop ignored, and each
             8-bit dtype's effect on the targets
  precompute frames per second of `vla-scripts/precompute_teacher.py`'s writer on the generated dataset
What the cache saves per training step is measured by bench/bench_step.py (same model and batch, cached vs on the fly).

Usage:
    python bench/bench_cache.py            # everything, ~3 minutes on 2 CPU cores
    python bench/bench_cache.py --quick --json cache.json   # fewer frames
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("WANDB_MODE", "disabled")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from report import SEED, Ratio, parse_args, print_ratios, settings_of, write_report  # noqa: E402

from rocket_openvla.align.pooling import pool_teacher_tokens  # noqa: E402
from rocket_openvla.data.tf_runtime import tf  # noqa: E402  (TensorFlow only through tf_runtime: see there)
from rocket_openvla.teachers.cache.geometry import cached_targets, position_term  # noqa: E402
from rocket_openvla.teachers.cache.layout import bytes_per_frame, decode_features, encode_features  # noqa: E402

PAPER = {"layers": 10, "tokens": 2 * 16 * 16, "channels": 2048}
RELEASE_BYTES = 24 * 2 * (37 * 37 + 5) * 2048 * 4  # every layer, unpooled, camera and register tokens, fp32
RELEASE_NAME = "release (24 layers, unpooled, fp32)"
STUDENT_GRID = (16, 16)


def size_rows() -> dict[str, float]:
    rows = {dtype: bytes_per_frame(PAPER["layers"], PAPER["tokens"], PAPER["channels"], dtype)
            for dtype in ("float32", "bfloat16", "float8_e4m3fn", "int8")}
    rows[RELEASE_NAME] = RELEASE_BYTES
    return rows


def _scene_frames(count: int, size: int = 224) -> np.ndarray:
    """uint8 [count, size, size, 3] primary-camera frames of the generated LIBERO-like episodes."""
    from rocket_openvla.data.synthetic.episodes import scripted_episode

    rng, frames = np.random.default_rng(SEED), []
    while len(frames) < count:
        steps = scripted_episode(rng, size)
        frames.extend(step["observation"]["image"] for step in steps[:: max(1, len(steps) // 4)])
    return np.stack(frames[:count])


def crop_rows(num_frames: int) -> dict[str, dict[str, float]]:
    """Per variant: mean token cosine and relative L2 distance to the crop-then-teacher targets."""
    from rocket_openvla.data.augment import augment_crop_box
    from rocket_openvla.teachers import VGGTAggregatorConfig, VGGTTeacher
    from rocket_openvla.teachers.base import TeacherPooling

    config = VGGTAggregatorConfig(img_size=518, embed_dim=128, depth=4, num_heads=4, patch_embed_depth=2)
    frames = _scene_frames(num_frames)
    boxes = np.stack([augment_crop_box(tf.constant([7, index], tf.int64)).numpy() for index in range(num_frames)])
    cropped = tf.image.crop_and_resize(tf.constant(frames, tf.float32), boxes, tf.range(num_frames), (224, 224))
    unit = torch.from_numpy(frames).permute(0, 3, 1, 2)[:, None].float() / 255  # [N, V=1, 3, 224, 224]
    unit_cropped = torch.from_numpy(np.clip(cropped.numpy(), 0, 255).round()).permute(0, 3, 1, 2)[:, None] / 255

    def teacher(grid: tuple[int, int], pos_embed: bool) -> VGGTTeacher:
        return VGGTTeacher.random([3], config=config, seed=0, grid=grid, num_cameras=1, input_format="unit",
                                  pooling=TeacherPooling(pos_embed=pos_embed))

    reference = teacher(STUDENT_GRID, True)(unit_cropped)[0]  # crop-then-teacher, [N, 256, C]
    teacher_grid, image_size = (37, 37), (518, 518)
    term = position_term((STUDENT_GRID,), teacher_grid, image_size, reference.shape[-1], 0.1, "bilinear")
    box_tensor = torch.from_numpy(boxes)[:, None]
    rows = {}
    for side in (16, 32, 37):
        maps = teacher((side, side), False)(unit)[0]
        targets = cached_targets(maps, ((side, side),), (STUDENT_GRID,), teacher_grid, box_tensor) + term
        rows[f"cache grid {side}, crop followed"] = _closeness(targets, reference)
        if side == 16:
            rows["cache grid 16, crop ignored"] = _closeness(maps + term, reference)
            for dtype in ("int8", "float8_e4m3fn"):
                encoded = encode_features(maps, dtype)
                quantised = decode_features(encoded["values"], encoded.get("scale"))
                stored = cached_targets(quantised, ((16, 16),), (STUDENT_GRID,), teacher_grid, box_tensor) + term
                rows[f"cache grid 16, crop followed, {dtype}"] = _closeness(stored, reference)
    whole = teacher(STUDENT_GRID, True)(unit)[0]
    rows["no augmentation: cache grid 16 vs on the fly"] = _closeness(
        pool_teacher_tokens(teacher((37, 37), False)(unit)[0][:, None], (37, 37), STUDENT_GRID, image_size,
                            pos_embed=False) + term, whole)
    return rows


def _closeness(targets: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    cosine = torch.nn.functional.cosine_similarity(targets, reference, dim=-1).mean()
    relative = (targets - reference).norm() / reference.norm()
    return {"cosine": round(float(cosine), 5), "relative_l2": round(float(relative), 5)}


def _finetune_config(root: Path, **sections):
    import draccus
    import yaml

    from rocket_openvla.training.config import FinetuneConfig

    config = {
        "backbone": {"type": "openvla", "size": "tiny"},
        "teacher": {"type": "vggt_random", "image_size": 518, "embed_dim": 128, "depth": 4},
        "rocket": {"student_layers": [1, 2], "teacher_layers": [1, 3], "coeff": 0.5, "student_token_shift": 1},
        "data": {"data_root_dir": str(root / "rlds"), "dataset": "synthetic_libero_no_noops", "shuffle_buffer_size": 64,
                 "num_parallel_calls": 2, "num_parallel_reads": 1,
                 "synthetic": {"generate": True, "num_episodes": 6, "image_size": 128}},
        "lora": {"rank": 8},
        "run": {"max_steps": 1000, "batch_size": 4, "save_freq": 1000, "log_freq": 1000,
                "run_root_dir": str(root / "runs"), "overwrite": True},
        "wandb": {"mode": "disabled"},
    }
    for section, values in sections.items():
        config.setdefault(section, {}).update(values)
    path = root / f"config_{len(list(root.glob('config_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(config))
    return draccus.parse(FinetuneConfig, config_path=str(path), args=[])


def precompute_row(root: Path) -> dict[str, float]:
    from rocket_openvla.training.distributed import DistributedContext
    from rocket_openvla.training.precompute import CacheWriter

    cache_dir = root / "cache"
    writer = CacheWriter(_finetune_config(root, teacher_cache={"dir": str(cache_dir)}),
                         DistributedContext(0, 1, 0, torch.device("cpu")))
    start = time.perf_counter()
    writer.run()
    seconds = time.perf_counter() - start
    frames = sum(entry[2] for entry in json.loads((cache_dir / "index.json").read_text())["episodes"].values())
    return {"frames": frames, "seconds": round(seconds, 2), "frames_per_second": round(frames / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=24, help="scene frames of the crop comparison")
    args = parse_args(parser, {"frames": 8})
    torch.manual_seed(SEED)
    results = {"size_bytes_per_frame": size_rows()}
    float32 = results["size_bytes_per_frame"]["float32"]
    print("bytes per frame (paper set-up):")
    for name, value in results["size_bytes_per_frame"].items():
        print(f"  {name:40s} {value / 1e6:9.2f} MB  ({value / float32:.3f} x float32)")

    results["crop"] = crop_rows(args.frames)
    print("teacher-then-crop (cache) vs crop-then-teacher (on the fly), random VGGT at 518 px:")
    for name, row in results["crop"].items():
        print(f"  {name:48s} cosine {row['cosine']:.4f}  relative L2 {row['relative_l2']:.4f}")

    with tempfile.TemporaryDirectory() as directory:
        results["precompute"] = precompute = precompute_row(Path(directory))
    print(f"precompute: {precompute['frames']} frames in {precompute['seconds']} s = "
          f"{precompute['frames_per_second']} frames/s (1 process)")
    sizes, crop = results["size_bytes_per_frame"], results["crop"]
    ratios = [
        Ratio("cache size: release layout / ours (bfloat16)", sizes[RELEASE_NAME] / sizes["bfloat16"], "bytes, x"),
        Ratio("cache size: int8 / bfloat16", sizes["int8"] / sizes["bfloat16"], "bytes, x"),
        Ratio("cached targets (grid 16) vs crop-then-teacher", crop["cache grid 16, crop followed"]["cosine"],
              "mean token cosine"),
        Ratio("cached targets, crop ignored, vs crop-then-teacher", crop["cache grid 16, crop ignored"]["cosine"],
              "mean token cosine"),
        Ratio("precompute throughput (1 process)", precompute["frames_per_second"], "frames/s"),
    ]
    print_ratios(ratios)
    write_report(args.json, "cache", settings_of(args), results, ratios)


if __name__ == "__main__":
    main()
