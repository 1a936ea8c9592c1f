#!/usr/bin/env bash
# Set up .venv (first run: a few minutes), then finetune a tiny OpenVLA-OFT policy with ROCKET on a generated
# LIBERO-format dataset with 2 CPU processes (configs/quickstart.yaml). Extra arguments override config fields,
# e.g. `bash scripts/quickstart.sh --run.max_steps 20`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE="${WANDB_MODE:-offline}"
exec "$root/.venv/bin/torchrun" --standalone --nproc-per-node 2 vla-scripts/finetune_rocket.py \
  --config_path configs/quickstart.yaml "$@"
