#!/usr/bin/env bash
# Set up .venv (first run: a few minutes), lint with ruff, then run the whole test suite on CPU. Extra arguments go
# to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
"$root/.venv/bin/ruff" check .
export TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE=disabled
exec "$root/.venv/bin/python" -m pytest -q "$@"
