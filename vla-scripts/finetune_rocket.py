"""Finetune a VLA with ROCKET as the auxiliary objective.

    torchrun --standalone --nproc-per-node 2 vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml
    torchrun --nnodes 2 --nproc-per-node 8 ... vla-scripts/finetune_rocket.py --config_path <config.yaml>
    python vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml --run.max_steps 10   # one process
    python vla-scripts/finetune_rocket.py --help                                                    # every field

Every field of `rocket_openvla.training.config.FinetuneConfig` can be set in the YAML or on the command line
(`--rocket.coeff 0` is the baseline; `--run.resume true` continues the run from its latest checkpoint). A bad
config fails before any model is built, with one message and exit status 2.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.cli import parse_config, process_rank, run_entry_point  # noqa: E402
from rocket_openvla.training.config import FinetuneConfig  # noqa: E402


def main() -> None:
    config = parse_config(FinetuneConfig)
    config.validate()  # before any model, data or process group
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from rocket_openvla.training.loop import finetune

    run_dir = finetune(config)
    if process_rank() == 0:
        print(f"run directory: {run_dir}")


if __name__ == "__main__":
    run_entry_point(main)
