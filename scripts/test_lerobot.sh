#!/usr/bin/env bash
# Run tests/integrations/lerobot/ in the lerobot venv, building it first if needed. Extra arguments go to pytest.
#
# lerobot 0.6.1 needs Python >= 3.12 and pins (torch < 2.12, transformers 5.4-5.5) that conflict with .venv, so it
# gets a venv of its own outside the clone, keyed by requirements-lerobot.txt and the Python version:
#   ${XDG_CACHE_HOME:-~/.cache}/rocket_openvla/venvs/lerobot-<hash>
# The first run downloads ~7 GB (torch with its CUDA libraries) and takes minutes; later runs reuse the venv.
# Python: $LEROBOT_PYTHON if set, else the first of python3.12, python3.13, pyenv's 3.12.x / 3.13.x and python3 that
# runs and is >= 3.12. The package is used from this clone (PYTHONPATH), so one venv serves every clone.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
requirements="$root/requirements-lerobot.txt"

is_recent_python() {
  "$1" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 12) else 1)' >/dev/null 2>&1
}

find_python() {
  local candidates=()
  [ -n "${LEROBOT_PYTHON:-}" ] && candidates+=("$LEROBOT_PYTHON")
  candidates+=(python3.12 python3.13)
  if command -v pyenv >/dev/null 2>&1; then
    local versions
    versions="$(pyenv root)/versions"
    for pattern in '3.12.*' '3.13.*'; do
      while IFS= read -r dir; do candidates+=("$dir/bin/python"); done \
        < <(find "$versions" -maxdepth 1 -name "$pattern" 2>/dev/null | sort -rV)
    done
  fi
  candidates+=(python3)
  for candidate in "${candidates[@]}"; do
    if is_recent_python "$candidate"; then
      command -v "$candidate" || echo "$candidate"
      return 0
    fi
  done
  echo "test_lerobot.sh: no Python >= 3.12 found (tried ${candidates[*]}); lerobot 0.6.1 needs one: install it" \
    "(e.g. pyenv install 3.12) or set LEROBOT_PYTHON=/path/to/python3.12" >&2
  return 1
}

python="$(find_python)"
version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
key="$( (cat "$requirements"; echo "$version") | sha256sum | cut -c1-16)"
venvs="${XDG_CACHE_HOME:-$HOME/.cache}/rocket_openvla/venvs"
venv="$venvs/lerobot-$key"
mkdir -p "$venvs"
exec 9>"$venv.lock"
command -v flock >/dev/null 2>&1 && flock 9  # one build at a time; others wait, then reuse it
if [ ! -f "$venv/.complete" ]; then  # absent or half-built: (re)build
  echo "test_lerobot.sh: building $venv with Python $version (first run: minutes, ~7 GB)" >&2
  rm -rf "$venv"
  "$python" -m venv "$venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" \
      >"$venv/install.log" 2>&1; then
    tail -n 40 "$venv/install.log" >&2
    echo "test_lerobot.sh: installing $requirements failed (log: $venv/install.log)" >&2
    exit 1
  fi
  touch "$venv/.complete"
fi
exec 9>&-
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" TF_CPP_MIN_LOG_LEVEL=3 WANDB_MODE=disabled
exec "$venv/bin/python" -m pytest -q tests/integrations/lerobot "$@"
