"""Time the VGGT teacher's forward per sample: full run vs early exit at the deepest requested block.

Rows (same random teacher, same OpenVLA-format batch):
  all-layers   every block run and every block's targets pooled (what the release computes: 24 of 24 layers)
  last-layer   every block run, one target
  early-exit   blocks 0..k run for the deepest requested block k (the teacher stops there)

Usage:
    python bench/bench_teacher.py                          # small config on CPU
    python bench/bench_teacher.py --quick --json teacher.json  # the defaults (already quick); writes the report
    python bench/bench_teacher.py --early-exit 0 3 --batch 2
    python bench/bench_teacher.py --vggt-1b --device cuda  # real size, random weights, bf16 autocast
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch
from report import SEED, Ratio, parse_args, print_ratios, settings_of, write_report

from rocket_openvla.backbones.openvla.processing_openvla import ImageNormalization
from rocket_openvla.teachers import VGGT_1B, VGGTAggregator, VGGTAggregatorConfig, VGGTTeacher

SMALL = VGGTAggregatorConfig(img_size=224, embed_dim=128, depth=8, num_heads=4, patch_embed_depth=4)


def seconds_per_sample(teachers: dict[str, VGGTTeacher], pixel_values: torch.Tensor, rounds: int) -> dict[str, float]:
    """Best-of-``rounds`` wall time per sample of each teacher; rows interleave so load drift hits all alike."""

    def sync() -> None:
        if pixel_values.device.type == "cuda":
            torch.cuda.synchronize()

    best = dict.fromkeys(teachers, float("inf"))
    for teacher in teachers.values():
        teacher(pixel_values)  # warm-up (also the one-off range check)
    for _ in range(rounds):
        for name, teacher in teachers.items():
            sync()
            start = time.perf_counter()
            teacher(pixel_values)
            sync()
            best[name] = min(best[name], (time.perf_counter() - start) / pixel_values.shape[0])
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cameras", type=int, default=2)
    parser.add_argument("--early-exit", type=int, nargs="+", default=[1, 3], help="deepest block of each row")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--vggt-1b", action="store_true", help="the VGGT-1B configuration instead of the small one")
    args = parse_args(parser, {})  # --quick runs the defaults (< 40 s on 2 CPU cores); fewer rounds let noise in

    config = VGGT_1B if args.vggt_1b else SMALL
    device = torch.device(args.device)
    torch.manual_seed(SEED)
    images = torch.rand(args.batch, args.cameras, 3, 224, 224, device=device)
    normalization = ImageNormalization()  # openvla-7b's
    dino = (normalization.means[0], normalization.stds[0])
    mean, std = (torch.tensor(values, device=device).view(1, 1, 3, 1, 1) for values in dino)
    pixel_values = torch.cat([(images - mean) / std, (images - 0.5) / 0.5], dim=2).flatten(1, 2)  # dinosiglip
    print(
        f"embed_dim={config.embed_dim} depth={config.depth} dino_depth={config.patch_embed_depth} "
        f"img_size={config.img_size} B={args.batch} cameras={args.cameras} device={device} "
        f"threads={torch.get_num_threads()}"
    )
    aggregator = VGGTAggregator.from_config(config).to(device)
    rows = [("all-layers", list(range(config.depth))), ("last-layer", [config.depth - 1])]
    rows += [(f"early-exit@{block}", [block]) for block in args.early_exit]
    teachers = {
        name: VGGTTeacher(aggregator, layers, grid=(16, 16), num_cameras=args.cameras, input_format="openvla",
                             pixel_normalization=dino)
        for name, layers in rows
    }
    timings = seconds_per_sample(teachers, pixel_values, args.rounds)
    speedups = {name: timings["last-layer"] / seconds for name, seconds in timings.items()}
    print(f"best of {args.rounds} rounds")
    for name, seconds in timings.items():
        print(f"{name:15s} {seconds * 1e3:9.1f} ms/sample   speed-up vs last-layer {speedups[name]:5.2f}x")
    ratios = [Ratio(f"{name} vs last-layer", speedups[name], "teacher speed-up, x (last-layer time / row time)")
              for name in timings if name != "last-layer"]
    print_ratios(ratios)
    results = {
        "config": asdict(config), "threads": torch.get_num_threads(),
        "ms_per_sample": {name: seconds * 1e3 for name, seconds in timings.items()},
        "speed_up_vs_last_layer": speedups,
    }
    write_report(args.json, "teacher", settings_of(args), results, ratios)


if __name__ == "__main__":
    main()
