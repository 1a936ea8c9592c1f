"""TensorFlow for the input pipeline only: imported quietly and kept off the GPUs (torch owns them).

Every module of `rocket_openvla.data` gets `tf` and `tfds` from here, so the settings apply before first use.
Import TensorFlow through this module in any process that also uses torch: Triton's native library (pulled in
by torch._dynamo, e.g. via timm/torchvision) segfaults when it is loaded after TensorFlow's (tensorflow-cpu
2.21 with torch 2.14's triton), so it is loaded first here.
"""

import contextlib
import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

with contextlib.suppress(ImportError):
    import triton._C.libtriton  # noqa: F401  (see the module docstring)

import tensorflow as tf  # noqa: E402
import tensorflow_datasets as tfds  # noqa: E402

try:
    tf.config.set_visible_devices([], "GPU")
except RuntimeError:  # TF's devices were initialised earlier in this process; nothing we can change then
    pass
tfds.disable_progress_bar()
logging.getLogger("absl").setLevel(logging.WARNING)

__all__ = ["tf", "tfds"]
