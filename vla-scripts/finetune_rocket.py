"""Finetune a VLA with ROCKET as the auxiliary objective.

    torchrun --standalone --nproc-per-node 2 vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml
    torchrun --nnodes 2 --nproc-per-node 8 ... vla-scripts/finetune_rocket.py --config_path configs/paper/openvla_libero_rocket.yaml
    python vla-scripts/finetune_rocket.py --config_path configs/quickstart.yaml --run.max_steps 10   # one process

Every field of `rocket_openvla.training.config.FinetuneConfig` can be set in the YAML or on the command line
(`--rocket.coeff 0` is the baseline; `--run.resume true` continues the run from its latest checkpoint).
"""

import logging
import os

import draccus

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.training.config import FinetuneConfig  # noqa: E402
from rocket_openvla.training.loop import finetune  # noqa: E402


@draccus.wrap()
def main(config: FinetuneConfig) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_dir = finetune(config)
    if int(os.environ.get("RANK", 0)) == 0:
        print(f"run directory: {run_dir}")


if __name__ == "__main__":
    main()
