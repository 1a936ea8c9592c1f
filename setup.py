"""Package discovery only (metadata lives in pyproject.toml).

The top-level `patches/` folder (our runtime patches to upstream libraries) ships as `rocket_openvla.patches`.
"""

from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["rocket_openvla", "rocket_openvla.*"]) + ["rocket_openvla.patches"],
    package_dir={"rocket_openvla.patches": "patches"},
)
