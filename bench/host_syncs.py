"""Count the host synchronisations a piece of code makes: each one stalls the CUDA queue until the GPU catches up.

On CUDA, torch's own sync debugger reports every sync (`torch.cuda.set_sync_debug_mode("warn")`). On CPU nothing
syncs, so the counter instead records the operators that would sync on CUDA: reading a tensor's value on the host
(`.item()`, `bool(t)`, `int(t)`: `aten._local_scalar_dense`) and the ops whose output size depends on the data
(`nonzero`, `masked_select`, boolean-mask indexing and assignment, `unique`, `repeat_interleave` without
`output_size`). Both count forward and backward.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
SYNCING_OPS = {
    aten._local_scalar_dense.default: ".item() / bool() / int()",
    aten.nonzero.default: "nonzero",
    aten.masked_select.default: "masked_select",
    aten._unique2.default: "unique",
    aten.unique_consecutive.default: "unique_consecutive",
    aten.unique_dim.default: "unique",
}


BOOLEAN_INDEXING_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default,
                        aten._index_put_impl_.default}


def _syncing_op(func, args: tuple, kwargs: dict) -> str | None:  # noqa: ANN001
    """The name of the sync `func(*args, **kwargs)` would make on CUDA, or None."""
    if func in SYNCING_OPS:
        return SYNCING_OPS[func]
    if func in BOOLEAN_INDEXING_OPS and any(
            index is not None and index.dtype in (torch.bool, torch.uint8) for index in args[1]):
        return "boolean-mask indexing"
    if func == aten.repeat_interleave.Tensor and kwargs.get("output_size") is None:
        return "repeat_interleave without output_size"
    return None


class _SyncingOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        name = _syncing_op(func, args, kwargs)
        if name is not None:
            self.calls[name] += 1
        return func(*args, **kwargs)


def count_host_syncs(fn: Callable[[], Any], device: torch.device) -> dict[str, Any]:
    """Run `fn()` once; returns `{"count": n, "method": ..., "by_op": {...}}`."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                fn()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        messages = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
        by_op = Counter(message.split("\n")[0][:80] for message in messages)
        return {"count": len(messages), "method": "torch.cuda.set_sync_debug_mode", "by_op": dict(by_op)}
    with _SyncingOps() as mode:
        fn()
    return {"count": sum(mode.calls.values()), "method": "ops that sync on CUDA (dispatch mode)",
            "by_op": dict(mode.calls)}
