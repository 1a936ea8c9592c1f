#!/usr/bin/env bash
# The benchmark entry points' CPU dry runs (tests/bench/: `bash bench/gpu_check.sh --tiny` and bench/run_all.py's
# report table), ~1 minute. The main suite leaves them out (pyproject's norecursedirs); CI (.ci/run) runs this after
# it. Extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE=disabled
exec "$root/.venv/bin/python" -m pytest -q tests/bench "$@"
