"""Serve a policy over HTTP with OpenVLA-OFT's `/act` protocol (FastAPI + uvicorn, 127.0.0.1 by default).

    python vla-scripts/serve_policy.py --policy_dir runs/quickstart/merged [--port 8777 --device cuda]

See `rocket_openvla.deploy.server` for the request and answer formats, and `rocket_openvla.deploy.client` for a
client.
"""

import logging
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.cli import parse_config, run_entry_point  # noqa: E402
from rocket_openvla.deploy.server import ServeConfig  # noqa: E402


def main() -> None:
    config = parse_config(ServeConfig)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from rocket_openvla.deploy.server import serve

    serve(config)


if __name__ == "__main__":
    run_entry_point(main)
