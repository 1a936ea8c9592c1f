"""The generated dataset and tiny finetune configs of the training tests."""

from tests.training.conftest import rlds_root  # noqa: F401  (the session fixture)
