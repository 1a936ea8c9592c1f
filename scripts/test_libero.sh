#!/usr/bin/env bash
# Install the LIBERO simulator into .venv if needed (scripts/setup_libero.sh) and run the closed-loop smoke tests
# (tests/eval/test_libero_smoke.py: one task of each suite with the random policy, one episode with a tiny policy).
# The main suite skips them while LIBERO is absent; CI (.ci/run) runs this after it. If the simulator cannot be
# installed (no package index, no EGL), this says so and exits 0: the rest of CI still counts. Extra arguments go to
# pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
if ! bash "$root/scripts/setup_libero.sh"; then
  echo "test_libero.sh: LIBERO could not be installed here (see above): the closed-loop smoke tests did NOT run" >&2
  exit 0
fi
cd "$root"
export TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE=disabled
exec "$root/.venv/bin/python" -m pytest -q tests/eval/test_libero_smoke.py "$@"
