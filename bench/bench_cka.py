"""Peak memory of the CKA profile: our streamed minibatch accumulator against the release's feature store.

The release's profiler (`profiling_cka.py`) keeps every sample's token-flattened features of every layer in CPU
memory, fp32, then builds N x N Gram matrices: for OpenVLA-7B (33 student states of 256 x 4096, 24 VGGT layers of
256 x 2048) and N = 2048 samples per rank that is ~386 GB. `StreamingCKA` holds one minibatch's features and three
HSIC sums per layer pair, whatever N.

Both run in fresh subprocesses on the paper's layer counts and token count with the channel widths divided by
`--scale` (random features with the same shapes):
  ours     peak RSS increase while streaming N = --samples samples in minibatches of --batch
  release  peak RSS increase of the feature store + Gram matrices for a few small N (the machine cannot hold
           N = 2048), fitted linearly in N and extrapolated to --samples; beside it, the store's size computed from
           the shapes, at the scaled and at the full paper shapes
The ratio is release (extrapolated) / ours, at the same N and shapes.

Usage:
    python bench/bench_cka.py                      # N = 2048, widths / 16; ~4 minutes on 2 busy CPU cores
    python bench/bench_cka.py --scale 8 --release-samples 64 128
    python bench/bench_cka.py --quick --json cka.json  # N = 512, widths / 32, release at N = 32 64 96; ~50 s;
                                                       # writes the report (bench/report.py's format)
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from report import SEED, Ratio, parse_args, print_ratios, settings_of, write_report

from rocket_openvla.profiling.cka import StreamingCKA, centred_gram, hsic_terms

PAPER = {"student_layers": 33, "teacher_layers": 24, "tokens": 256, "student_dim": 4096, "teacher_dim": 2048}
FLOAT32 = 4
QUICK = {"samples": 512, "scale": 32, "release_samples": [32, 64, 96]}


def shapes(scale: int) -> dict[str, int]:
    return {**PAPER, "student_dim": PAPER["student_dim"] // scale, "teacher_dim": PAPER["teacher_dim"] // scale}


def feature_bytes_per_sample(shape: dict[str, int]) -> int:
    """fp32 bytes of one sample's token-flattened features over every layer (what the release stores)."""
    return FLOAT32 * shape["tokens"] * (shape["student_layers"] * shape["student_dim"]
                                        + shape["teacher_layers"] * shape["teacher_dim"])


class Features:
    """Random structured features of the given shapes: per layer, two token latents times fixed channel vectors."""

    def __init__(self, shape: dict[str, int]) -> None:
        generator = torch.Generator().manual_seed(SEED)
        dims = [shape["student_dim"]] * shape["student_layers"] + [shape["teacher_dim"]] * shape["teacher_layers"]
        self.tokens, self.num_student = shape["tokens"], shape["student_layers"]
        self.channels = [torch.randn(2, dim, generator=generator) for dim in dims]
        self.generator = generator

    def minibatch(self, size: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """S student and T teacher tensors `[size, tokens * dim]`."""
        latents = torch.randn(size, self.tokens, 2, generator=self.generator)
        layers = [(latents @ channels).flatten(1) for channels in self.channels]
        return layers[:self.num_student], layers[self.num_student:]


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def measure_ours(shape: dict[str, int], samples: int, batch: int) -> dict[str, float]:
    features = Features(shape)
    accumulator = StreamingCKA(shape["student_layers"], shape["teacher_layers"])
    baseline, start = peak_rss(), time.perf_counter()
    for _ in range(samples // batch):
        accumulator.update(*features.minibatch(batch))
    assert torch.isfinite(accumulator.matrix()).all()
    return {"peak_increase_bytes": peak_rss() - baseline, "seconds": time.perf_counter() - start}


def measure_release(shape: dict[str, int], samples: int, batch: int) -> dict[str, float]:
    """The release's structure: collect every sample's features per layer, concatenate, Gram, CKA per pair."""
    features = Features(shape)
    baseline, start = peak_rss(), time.perf_counter()
    student, teacher = [[] for _ in range(shape["student_layers"])], [[] for _ in range(shape["teacher_layers"])]
    for _ in range(samples // batch):
        xs, ys = features.minibatch(batch)
        for store, values in zip(student + teacher, xs + ys):
            store.append(values)
    grams_x = torch.stack([centred_gram(torch.cat(store)) for store in student])
    grams_y = torch.stack([centred_gram(torch.cat(store)) for store in teacher])
    cross, self_x, self_y = hsic_terms(grams_x, grams_y, unbiased=False)
    assert torch.isfinite(cross / (self_x[:, None] * self_y[None]).sqrt()).all()
    return {"peak_increase_bytes": peak_rss() - baseline, "seconds": time.perf_counter() - start}


def run_child(kind: str, scale: int, samples: int, batch: int) -> dict[str, float]:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--scale", str(scale),
               "--samples", str(samples), "--batch", str(batch)]
    completed = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=2048, help="N, the samples of the profile")
    parser.add_argument("--scale", type=int, default=16, help="divide the paper's channel widths by this")
    parser.add_argument("--batch", type=int, default=16, help="minibatch size")
    parser.add_argument("--release-samples", type=int, nargs="+", default=[64, 128, 192],
                        help="small N at which the release's feature store is measured")
    parser.add_argument("--child", choices=("ours", "release"), help=argparse.SUPPRESS)
    args = parse_args(parser, QUICK)
    shape = shapes(args.scale)
    if args.child:
        measure = measure_ours if args.child == "ours" else measure_release
        print(json.dumps(measure(shape, args.samples, args.batch)))
        return

    ours = run_child("ours", args.scale, args.samples, args.batch)
    release = {n: run_child("release", args.scale, n, args.batch) for n in args.release_samples}
    ns = torch.tensor(args.release_samples, dtype=torch.float64)
    peaks = torch.tensor([release[n]["peak_increase_bytes"] for n in args.release_samples], dtype=torch.float64)
    slope, intercept = torch.linalg.lstsq(torch.stack([ns, torch.ones_like(ns)], 1), peaks[:, None]).solution[:, 0]
    extrapolated = float(slope * args.samples + intercept)
    full = feature_bytes_per_sample(PAPER) * args.samples
    results = {
        "samples": args.samples, "batch": args.batch, "scale": args.scale, "shapes": shape,
        "ours_peak_increase_bytes": ours["peak_increase_bytes"], "ours_seconds": round(ours["seconds"], 1),
        "release_measured": {str(n): r["peak_increase_bytes"] for n, r in release.items()},
        "release_bytes_per_sample_fitted": float(slope),
        "release_store_bytes_per_sample": feature_bytes_per_sample(shape),
        "release_extrapolated_bytes": extrapolated,
        "ratio_release_over_ours": extrapolated / ours["peak_increase_bytes"],
        "paper_shapes_release_store_bytes": full,
        "paper_shapes_ours_minibatch_bytes": feature_bytes_per_sample(PAPER) * args.batch,
    }
    gb = 1e9
    print(f"shapes: {shape['student_layers']} x {shape['tokens']} x {shape['student_dim']} student, "
          f"{shape['teacher_layers']} x {shape['tokens']} x {shape['teacher_dim']} teacher (paper widths / "
          f"{args.scale}); N = {args.samples}, minibatch {args.batch}")
    print(f"  ours (streamed, measured)       peak RSS +{ours['peak_increase_bytes'] / gb:7.2f} GB "
          f"({ours['seconds']:.0f} s)")
    for n, r in release.items():
        print(f"  release store, N = {n:5d} (measured) peak RSS +{r['peak_increase_bytes'] / gb:7.2f} GB")
    print(f"  release store, N = {args.samples} (extrapolated) +{extrapolated / gb:7.2f} GB "
          f"(fit {float(slope) / 1e6:.2f} MB/sample; the features alone: {feature_bytes_per_sample(shape) / 1e6:.2f} "
          "MB/sample)")
    print(f"  ratio release / ours: {results['ratio_release_over_ours']:.0f}x")
    print(f"paper shapes, N = {args.samples}: the release's store {full / gb:.0f} GB per rank; ours holds one "
          f"minibatch of features, {results['paper_shapes_ours_minibatch_bytes'] / gb:.2f} GB in fp32")
    ratios = [Ratio("release extrapolated / ours", results["ratio_release_over_ours"],
                    f"peak RSS increase of the CKA profile at N = {args.samples}, x")]
    print_ratios(ratios)
    write_report(args.json, "cka", settings_of(args), results, ratios)


if __name__ == "__main__":
    main()
