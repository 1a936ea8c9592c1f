"""Profile a ROCKET set-up: CKA between layers, gradient conflict between layer pairs, projector similarity.

    python vla-scripts/profile_alignment.py --config_path configs/quickstart.yaml --tool cka --cka.num_samples 64
    python vla-scripts/profile_alignment.py --config_path configs/quickstart_pi0.yaml --tool gradient_conflict \
        --gradient.layouts '[rocket,shared,independent]'
    python vla-scripts/profile_alignment.py --tool gradient_conflict --checkpoints runs/quickstart   # every step
    python vla-scripts/profile_alignment.py --tool projector_similarity --checkpoints runs/quickstart
    torchrun --standalone --nproc-per-node 8 vla-scripts/profile_alignment.py \
        --config_path configs/paper/openvla_libero_rocket.yaml --tool cka --cka.num_samples 2048

The config is a finetune config (backbone, teacher, data, rocket) plus the profiling fields (see
`rocket_openvla.profiling.config.ProfileConfig`; `--help` lists them). With `--checkpoints`, the run's own config.yaml
describes the model. Results (JSON, PNG) go to <run directory>/profiling/ unless `--output_dir` is given.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.cli import parse_config, process_rank, run_entry_point  # noqa: E402
from rocket_openvla.profiling.config import ProfileConfig  # noqa: E402


def main() -> None:
    config = parse_config(ProfileConfig)
    config.validate()  # before any model, data or process group
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from rocket_openvla.profiling.runner import profile_alignment

    path = profile_alignment(config)
    if process_rank() == 0:
        print(f"{config.tool}: {path} and {path.with_suffix('.png')}")


if __name__ == "__main__":
    run_entry_point(main)
