"""Precompute the teacher's targets once, then train without the teacher.

    torchrun --standalone --nproc-per-node 2 vla-scripts/precompute_teacher.py --config_path configs/quickstart.yaml \
        --teacher_cache.dir .cache/teacher/quickstart
    torchrun --standalone --nproc-per-node 2 vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml \
        --teacher_cache.dir .cache/teacher/quickstart

It reads the training config (`teacher`, `rocket`, `data`, `backbone` sections) plus `teacher_cache` (layers, grid,
dtype, stride; see `rocket_openvla.teachers.cache.config`). A killed precompute resumes where it stopped when rerun
with the same command; a cache made with other settings is refused.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.cli import parse_config, process_rank, run_entry_point  # noqa: E402
from rocket_openvla.training.config import FinetuneConfig  # noqa: E402


def main() -> None:
    config = parse_config(FinetuneConfig)
    config.validate()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from rocket_openvla.training.precompute import precompute_teacher_cache

    directory = precompute_teacher_cache(config)
    if process_rank() == 0:
        print(f"teacher cache: {directory}")


if __name__ == "__main__":
    run_entry_point(main)
