#!/usr/bin/env bash
# Create (once) the side environment .venv-oft/ in which tests/backbones/openvla/test_oft_format.py checks that saved
# OpenVLA policy directories load with OpenVLA-OFT's evaluation stack: transformers 4.40.1 and tokenizers 0.19.1 (OFT's
# pins). Everything else -- torch, numpy, safetensors, requests, ... -- comes from .venv through a `.pth` file, which
# Python appends to sys.path after the side environment's own site-packages, so the old transformers and tokenizers
# shadow the project's and torch is the project's. About 130 MB (90 of them transformers) and 30-60 s the first time;
# a second run only checks the versions (< 1 s).
# Usage: bash scripts/setup_oft_env.sh   (OFT_ENV=<dir> puts the environment elsewhere; the test reads OFT_ENV too)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
env_dir="${OFT_ENV:-$root/.venv-oft}"
main_python="$root/.venv/bin/python"
pins=(transformers==4.40.1 tokenizers==0.19.1 huggingface_hub==0.22.2)
check='import sys
from importlib.metadata import version
from importlib.util import find_spec
versions = (version("transformers"), version("tokenizers"))
assert versions == ("4.40.1", "0.19.1"), versions
assert find_spec("torch") is not None, "torch is not importable: the .pth file to .venv is missing"
print(f"OFT side environment {sys.prefix}: transformers {versions[0]}, tokenizers {versions[1]}")'
if [ ! -x "$main_python" ]; then
  echo "no $main_python: run scripts/setup_env.sh first (the side environment takes torch from .venv)" >&2
  exit 1
fi
if [ -x "$env_dir/bin/python" ] && "$env_dir/bin/python" -c "$check" 2>/dev/null; then
  exit 0
fi
if [ ! -x "$env_dir/bin/python" ]; then
  "$main_python" -m venv "$env_dir"
fi
"$env_dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${pins[@]}"
site_packages() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
site_packages "$main_python" > "$(site_packages "$env_dir/bin/python")/zz_project_venv.pth"
"$env_dir/bin/python" -c "$check"
"$env_dir/bin/python" -c 'import torch, transformers; print(f"torch {torch.__version__} from {torch.__file__}")'
