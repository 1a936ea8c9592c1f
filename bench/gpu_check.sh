#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): ~5 minutes on one H100/H200 (estimated), random weights at OpenVLA-7B /
# VGGT-1B shapes, nothing downloaded; JSON to $OUT (or --out DIR, else bench/results). `--tiny`: the CPU dry run CI
# does (under a minute).
#   bash bench/gpu_check.sh              # on the GPU machine, in an environment with this repo's requirements
#   bash bench/gpu_check.sh --tiny       # anywhere
# Python: $PYTHON, else the repo's .venv (scripts/setup_env.sh), else python3 on PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-}"
if [[ -z "$python" ]]; then
    if [[ -x "$root/.venv/bin/python" ]]; then python="$root/.venv/bin/python"; else python="python3"; fi
fi
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE=disabled PYTHONUNBUFFERED=1 PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" bench/gpu_check.py "$@"
