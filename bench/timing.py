"""Wall time of a call, with the device's queue drained before and after each one."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch


def timed(fn: Callable[[], Any], iters: int, device: torch.device) -> list[float]:
    """Wall seconds of each of `iters` calls of `fn`, after one warm-up call."""

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    seconds = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds
