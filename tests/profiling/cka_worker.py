"""Rank 1 of test_cka.py's two-process gloo group (the test process is rank 0), then a memory probe. Arguments:
`<init_method> <result.json>`.

  group   rank 1 accumulates its share of `small_minibatch`es and joins the all-reduce of the sums
  memory  peak RSS after streaming N1 and then N2 samples of fresh features (a random rank-32 mix per
          representation) through an accumulator, written to result.json
"""

import datetime
import json
import resource
import sys

import torch
import torch.distributed as dist

from rocket_openvla.profiling import StreamingCKA

MINIBATCHES, SMALL_BATCH = 6, 8
STUDENT, TEACHER, DIM, BATCH = 4, 3, 2048, 16
MEMORY_SAMPLES = (256, 2048)


def small_minibatch(index: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(index)
    shared = torch.randn(SMALL_BATCH, 20, generator=generator, dtype=torch.float64)
    x = [shared @ torch.randn(20, 30, generator=generator, dtype=torch.float64) for _ in range(3)]
    y = [shared[:, :10] + torch.randn(SMALL_BATCH, 10, generator=generator, dtype=torch.float64) for _ in range(2)]
    return x, y


def sharded_accumulator(rank: int, world: int) -> StreamingCKA:
    """This rank's minibatches (every `world`-th), summed over the group."""
    accumulator = StreamingCKA(3, 2)
    for index in range(rank, MINIBATCHES, world):
        accumulator.update(*small_minibatch(index))
    accumulator.all_reduce()
    return accumulator


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def stream_peaks() -> list[int]:
    generator = torch.Generator().manual_seed(0)
    mixing = [torch.randn(32, DIM, generator=generator) for _ in range(STUDENT + TEACHER)]
    accumulator, peaks, seen = StreamingCKA(STUDENT, TEACHER), [], 0
    for count in MEMORY_SAMPLES:
        while seen < count:
            latent = torch.randn(BATCH, 32, generator=generator)
            features = [latent @ m for m in mixing]
            accumulator.update(features[:STUDENT], features[STUDENT:])
            seen += BATCH
        peaks.append(peak_rss())
    assert torch.isfinite(accumulator.matrix()).all()
    return peaks


def main(init_method: str, result_path: str) -> None:
    dist.init_process_group("gloo", init_method=init_method, rank=1, world_size=2,
                            timeout=datetime.timedelta(seconds=120))
    sharded_accumulator(1, 2)
    dist.destroy_process_group()
    json.dump({"samples": MEMORY_SAMPLES, "peak_rss_bytes": stream_peaks(),
               "feature_bytes_per_sample": (STUDENT + TEACHER) * DIM * 4}, open(result_path, "w"))


if __name__ == "__main__":
    main(*sys.argv[1:])
