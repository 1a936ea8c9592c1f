#!/usr/bin/env bash
# Install the LIBERO simulator stack (requirements-libero.txt, ~580 MB of downloads, ~1.3 GB installed) into .venv,
# beside the main pins, and check that rendering works. Idempotent: a second run only verifies. Run
# scripts/setup_env.sh first. Rendering is offscreen through EGL; on a bare machine without Mesa's EGL, install
# it first: apt-get install -y libegl1 libegl-mesa0 libgl1-mesa-dri.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="$root/.venv/bin/python"
if [ ! -x "$python" ]; then
  echo "setup_libero.sh: $root/.venv does not exist: run scripts/setup_env.sh first" >&2
  exit 1
fi
# The main pins LIBERO must not move: compared before and after the install.
pinned() {
  "$python" -m pip list --format=freeze --disable-pip-version-check 2>/dev/null \
    | grep -iE '^(torch|torchvision|numpy|transformers|tensorflow-cpu|tokenizers)==' || true
}
before="$(pinned)"
"$python" -m pip install --quiet --disable-pip-version-check -r "$root/requirements-libero.txt"
after="$(pinned)"
if [ "$before" != "$after" ]; then
  echo "setup_libero.sh: installing LIBERO changed the main pins:" >&2
  diff <(echo "$before") <(echo "$after") >&2 || true
  echo "restore them with scripts/setup_env.sh and report the conflict" >&2
  exit 1
fi
MUJOCO_GL=egl PYOPENGL_PLATFORM=egl "$python" - <<'PY'
import numpy as np
import mujoco

model = mujoco.MjModel.from_xml_string("<mujoco><worldbody><geom size='1'/></worldbody></mujoco>")
with mujoco.Renderer(model, 16, 16) as renderer:
    renderer.update_scene(mujoco.MjData(model))
    assert renderer.render().shape == (16, 16, 3)
from libero.libero import benchmark  # noqa: E402,F401  (the package and its assets import)
PY
echo "setup_libero.sh: LIBERO ready in $root/.venv (EGL rendering works)"
