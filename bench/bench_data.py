"""The input pipeline of one process: samples/s, shuffle-buffer fill time and RSS, against what a GPU step consumes.

On a generated LIBERO-format RLDS dataset (primary + wrist camera, JPEG on disk), `rocket_openvla.data.build_dataset`
with OpenVLA-OFT's LIBERO settings (DataConfig's defaults: 224 px, `image_aug` on, its parallelism), each row in a
fresh process, so its peak RSS is its own:
  buffer N      shuffle buffer of N frames: seconds to build the pipeline, then to fill the buffer (N encoded frames)
                and yield the first sample; steady samples/s over the next samples after a warm-up; peak RSS and RSS
                at the end. RSS per buffered frame (end RSS, smallest vs largest buffer) is compared with a frame's
                bytes on disk.
  + processor   the smallest buffer, each batch of B samples also through the OpenVLA processor (the tiny backbone's,
                which applies the 7B's image transform: 2 towers x 2 cameras of normalised 224 x 224 pixels) and its
                collator: the whole host-side cost of a batch. Also the processor + collator alone per batch: the
                training loop runs them on its own thread between steps (`BatchStream.next`), while tf.data decodes
                and augments ahead in its own threads.
  GPU           steps/s of batch B one process can feed (samples/s with the processor / B); with --gpu-step-seconds
                S (a measured step at batch B), supply / demand = S x samples/s / B (> 1: the loader keeps up);
                without it, the shortest step the loader keeps up with (B / samples/s).
Buffers larger than the dataset hold repeated frames: memory and fill time still grow with the buffer. The measured
processes run torch with 1 intra-op thread, as torchrun sets for several GPUs per node (--torch-threads).

Usage:
    python bench/bench_data.py                                   # 400 episodes, buffers 1k / 10k / 50k
    python bench/bench_data.py --quick --json bench_data.json    # 40 episodes, buffers 256 / 2k / 8k, ~2.5 minutes
    python bench/bench_data.py --batch-size 8 --gpu-step-seconds 0.35
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("WANDB_MODE", "disabled")

import torch  # noqa: E402
from report import Ratio, parse_args, print_ratios, write_report  # noqa: E402

from rocket_openvla.data.config import SYNTHETIC_DATASET_NAME, DataConfig  # noqa: E402

OFT_LIBERO_BATCH = 8  # OpenVLA-OFT's LIBERO batch size per GPU
QUICK = {"buffers": [256, 2048, 8192], "episodes": 40, "samples": 192}
WARMUP_SAMPLES = 32  # past tf.data's parallel map and prefetch (DataConfig.num_parallel_calls = 8 each)


def data_config(root: Path, shuffle_buffer_size: int) -> DataConfig:
    """OFT's LIBERO pipeline settings (DataConfig's defaults: 224 px, image_aug) over the generated dataset."""
    return DataConfig(data_root_dir=root, dataset=SYNTHETIC_DATASET_NAME, shuffle_buffer_size=shuffle_buffer_size)


def prepare_dataset(root: Path, episodes: int, stored_size: int) -> dict[str, float]:
    """Generate the dataset and cache its statistics (so no measured process computes them); its size and cost."""
    from rocket_openvla.data.sources import open_datasets
    from rocket_openvla.data.synthetic import generate_synthetic_dataset

    start = time.perf_counter()
    generate_synthetic_dataset(root, SYNTHETIC_DATASET_NAME, num_episodes=episodes, image_size=stored_size)
    (opened,) = open_datasets(data_config(root, 1)).values()
    seconds = time.perf_counter() - start
    frames = opened.statistics.num_transitions
    encoded = sum(path.stat().st_size for path in (root / SYNTHETIC_DATASET_NAME).rglob("*.tfrecord*"))
    return {"episodes": opened.num_episodes, "frames": frames, "encoded_bytes_per_frame": round(encoded / frames),
            "seconds": round(seconds, 2)}


def measure(root: Path, buffer: int, samples: int, batch_size: int, with_processor: bool) -> dict[str, float]:
    """In this process: seconds to build the pipeline and to its first sample, steady samples/s after the warm-up,
    peak RSS and RSS at the end (bytes).

    With `with_processor`, samples are drawn B at a time and each batch goes through the OpenVLA processor and
    collator; `processor_seconds_per_batch` times those two alone on a batch already drawn.
    """
    from rocket_openvla.data.pipeline import build_dataset

    collate_batch = None
    if with_processor:
        from rocket_openvla.backbones.openvla.backbone_config import OpenVLABackboneConfig

        processor = OpenVLABackboneConfig().build().processor
        collator = processor.collator()

        def collate_batch(drawn: list[dict]) -> dict:
            return collator([processor(sample) for sample in drawn])

    start = time.perf_counter()
    stream = iter(build_dataset(data_config(root, buffer)))
    built = time.perf_counter()
    next(stream)  # starts the tf.data iterator, fills the shuffle buffer, decodes the first sample
    first = time.perf_counter()
    for _ in range(WARMUP_SAMPLES):
        next(stream)
    start_steady = time.perf_counter()
    if collate_batch is None:
        for _ in range(samples):
            next(stream)
    else:
        samples = samples // batch_size * batch_size
        for _ in range(samples // batch_size):
            collate_batch([next(stream) for _ in range(batch_size)])
    steady = time.perf_counter() - start_steady
    row = {"build_seconds": round(built - start, 3), "fill_seconds": round(first - built, 3),
           "samples": samples, "samples_per_second": round(samples / steady, 2),
           "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,  # Linux: ru_maxrss in kB
           "end_rss_bytes": resident_bytes()}
    if collate_batch is not None:
        drawn = [next(stream) for _ in range(batch_size)]
        repeats = max(1, samples // batch_size // 2)
        start_alone = time.perf_counter()
        for _ in range(repeats):
            collate_batch(drawn)
        row["processor_seconds_per_batch"] = round((time.perf_counter() - start_alone) / repeats, 4)
    return row


def resident_bytes() -> int:
    """This process's resident memory now (Linux), which, unlike the peak, excludes transient start-up peaks."""
    resident_pages = int(Path("/proc/self/statm").read_text().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def measure_in_child(root: Path, buffer: int, args: argparse.Namespace, with_processor: bool) -> dict:
    """`measure` in a fresh Python process (so its peak RSS belongs to this setting alone)."""
    command = [sys.executable, __file__, "--measure-buffer", str(buffer), "--root", str(root),
               "--samples", str(args.samples), "--batch-size", str(args.batch_size),
               "--torch-threads", str(args.torch_threads)] + (["--processor"] * with_processor)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"measuring buffer {buffer} failed (exit {result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def flags() -> argparse.Namespace:
    """The flags, with `--quick` and `--json` (bench/report.py)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--buffers", type=int, nargs="+", default=[1000, 10_000, 50_000], help="shuffle buffer sizes")
    parser.add_argument("--episodes", type=int, default=400, help="episodes to generate")
    parser.add_argument("--samples", type=int, default=1000, help="samples timed per row after the warm-up")
    parser.add_argument("--batch-size", type=int, default=OFT_LIBERO_BATCH, help="samples per GPU step (B)")
    parser.add_argument("--gpu-step-seconds", type=float, help="measured seconds of one training step at batch B")
    parser.add_argument("--stored-size", type=int, default=224, help="side of the images on disk (LIBERO's: 256)")
    parser.add_argument("--torch-threads", type=int, default=1, help="torch intra-op threads of the measured "
                        "processes (torchrun's per-process default with several GPUs per node: 1)")
    parser.add_argument("--measure-buffer", type=int, help=argparse.SUPPRESS)  # the child process of one row
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--processor", action="store_true", help=argparse.SUPPRESS)
    args = parse_args(parser, QUICK)
    args.buffers = sorted(args.buffers)
    if len(args.buffers) < 2:
        parser.error(f"--buffers {args.buffers}: give at least two sizes (the ratios compare the smallest and largest)")
    return args


def print_rows(rows: dict[str, dict[str, float]]) -> None:
    print(f"{'row':26s} {'build s':>8s} {'fill s':>7s} {'samples/s':>10s} {'peak RSS MB':>12s} {'end RSS MB':>11s}")
    for name, row in rows.items():
        print(f"  {name:24s} {row['build_seconds']:8.2f} {row['fill_seconds']:7.2f} {row['samples_per_second']:10.1f} "
              f"{row['peak_rss_bytes'] / 1e6:12.0f} {row['end_rss_bytes'] / 1e6:11.0f}")


def run(args: argparse.Namespace) -> None:
    batch, small, large = args.batch_size, args.buffers[0], args.buffers[-1]
    with tempfile.TemporaryDirectory(prefix="bench_data_") as directory:
        root = Path(directory)
        dataset = prepare_dataset(root, args.episodes, args.stored_size)
        print(f"dataset: {dataset['episodes']} episodes, {dataset['frames']} frames, 2 cameras of "
              f"{args.stored_size} px, {dataset['encoded_bytes_per_frame'] / 1e3:.1f} kB per frame on disk "
              f"(generated in {dataset['seconds']} s)")
        rows = {buffer: measure_in_child(root, buffer, args, False) for buffer in args.buffers}
        full = measure_in_child(root, small, args, True)
    print_rows({**{f"buffer {buffer}": row for buffer, row in rows.items()}, f"buffer {small} + processor": full})

    rss_per_frame = (rows[large]["end_rss_bytes"] - rows[small]["end_rss_bytes"]) / (large - small)
    print(f"RSS per buffered frame: {rss_per_frame / 1e3:.1f} kB "
          f"({rss_per_frame / dataset['encoded_bytes_per_frame']:.2f} x the encoded frame on disk)")
    print(f"processor + collator alone: {full['processor_seconds_per_batch'] * 1e3:.1f} ms per batch of {batch} "
          "(on the training thread, between steps)")
    supply = full["samples_per_second"] / batch  # steps/s one process can feed
    shortest_step = batch / full["samples_per_second"]
    gpu = {"batch_size": batch, "loader_steps_per_second": round(supply, 3),
           "shortest_step_seconds_fed": round(shortest_step, 4)}
    ratios = [
        Ratio(f"peak RSS, buffer {large} / buffer {small}",
              rows[large]["peak_rss_bytes"] / rows[small]["peak_rss_bytes"],
              "peak resident memory of one loader process, x"),
        Ratio(f"fill time, buffer {large} / buffer {small}", rows[large]["fill_seconds"] / rows[small]["fill_seconds"],
              "built pipeline to first sample (shuffle buffer fill), x"),
        Ratio(f"samples/s, buffer {large} / buffer {small}",
              rows[large]["samples_per_second"] / rows[small]["samples_per_second"],
              "steady throughput, x (~1: the buffer costs memory, not speed)"),
        Ratio("RSS per buffered frame / encoded frame on disk", rss_per_frame / dataset["encoded_bytes_per_frame"],
              "memory held per frame in the shuffle buffer, x its bytes on disk"),
        Ratio("samples/s, pipeline+processor / pipeline",
              full["samples_per_second"] / rows[small]["samples_per_second"],
              "host throughput with OpenVLA's processor and collator, x"),
        Ratio(f"loader steps/s at B={batch} (1 process)", supply, "training steps/s one process can feed"),
    ]
    if args.gpu_step_seconds:
        balance = supply * args.gpu_step_seconds
        gpu.update(gpu_step_seconds=args.gpu_step_seconds, supply_over_demand=round(balance, 3))
        ratios.append(Ratio(f"loader supply / GPU demand at B={batch}", balance,
                            f"> 1: one process keeps up with a {args.gpu_step_seconds} s step"))
        print(f"GPU step {args.gpu_step_seconds} s at B={batch}: one loader process "
              f"{'keeps up' if balance >= 1 else 'does NOT keep up'} (supply / demand {balance:.2f})")
    else:
        ratios.append(Ratio(f"shortest GPU step fed at B={batch} (s)", shortest_step,
                            "one process keeps up with steps slower than this (B / samples/s)"))
        print(f"one loader process feeds {supply:.2f} steps/s at B={batch}: it keeps up with GPU steps slower than "
              f"{shortest_step:.3f} s (pass --gpu-step-seconds to compare with a measured step)")
    print("ratios:")
    print_ratios(ratios)
    defaults = data_config(Path(), small)
    settings = {"quick": args.quick, "buffers": args.buffers, "episodes": args.episodes, "samples": args.samples,
                "warmup_samples": WARMUP_SAMPLES, "batch_size": batch, "stored_size": args.stored_size,
                "torch_threads": args.torch_threads, "image_size": defaults.image_size,
                "image_aug": defaults.image_aug, "num_parallel_calls": defaults.num_parallel_calls,
                "num_parallel_reads": defaults.num_parallel_reads}
    results = {"dataset": dataset, "buffers": {str(buffer): row for buffer, row in rows.items()},
               "pipeline_and_processor": {"buffer": small, **full},
               "rss_bytes_per_buffered_frame": round(rss_per_frame), "gpu": gpu}
    write_report(args.json, "data", settings, results, ratios)


def main() -> None:
    args = flags()
    if args.measure_buffer is None:
        run(args)
        return
    torch.set_num_threads(args.torch_threads)
    row = measure(args.root, args.measure_buffer, args.samples, args.batch_size, args.processor)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
