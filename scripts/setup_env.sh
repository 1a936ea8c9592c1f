#!/usr/bin/env bash
# Create (once) and update the project's virtual environment in .venv with the pinned, tested versions.
# Usage: source scripts/setup_env.sh   (or run it; a second run only checks that everything is installed)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
if [ ! -x "$root/.venv/bin/python" ]; then
  "$python" -m venv "$root/.venv"
fi
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-ci.txt"
"$root/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e "$root"
