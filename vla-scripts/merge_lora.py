"""Fold a run's LoRA adapter into its base weights: a self-contained, deployable policy directory.

    python vla-scripts/merge_lora.py --checkpoint runs/quickstart --output runs/quickstart/merged_latest
    python vla-scripts/merge_lora.py --checkpoint runs/x/checkpoints/step_00005000 --base checkpoints/openvla-7b \
        --output deploy/x_5000

See `rocket_openvla.deploy.merge` for what the output holds and the check made before it is written.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.cli import parse_config, run_entry_point  # noqa: E402
from rocket_openvla.deploy.merge import MergeConfig  # noqa: E402


def main() -> None:
    config = parse_config(MergeConfig)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from rocket_openvla.deploy.merge import merge_checkpoint

    print(f"merged policy: {merge_checkpoint(config)}")


if __name__ == "__main__":
    run_entry_point(main)
