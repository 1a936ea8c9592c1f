#!/usr/bin/env bash
# Set up .venv (first run: a few minutes), lint with ruff, then run the whole test suite on CPU. Extra arguments go
# to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup_env.sh"
# OpenVLA-OFT's tokenizer stack (transformers 4.40.1, tokenizers 0.19.1) for the export test; skipped if it fails.
bash "$root/scripts/setup_oft_env.sh" || echo "OpenVLA-OFT side environment not built: its test is skipped" >&2
cd "$root"
"$root/.venv/bin/ruff" check .
export TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE=disabled
exec "$root/.venv/bin/python" -m pytest -q "$@"
