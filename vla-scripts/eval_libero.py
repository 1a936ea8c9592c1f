"""Evaluate a policy closed-loop in LIBERO with OpenVLA-OFT's protocol (needs the `[libero]` extra:
`bash scripts/setup_libero.sh`).

    python vla-scripts/eval_libero.py --policy runs/quickstart/merged --suites '[libero_spatial]' --workers 2
    python vla-scripts/eval_libero.py --policy http://127.0.0.1:8777 --output_dir runs/eval_server   # a server
    python vla-scripts/eval_libero.py --policy random --num_trials_per_task 1 --max_steps 30        # smoke test

Writes settings.json, episodes.jsonl, results.json (and videos/ with --videos_per_task N) to --output_dir; a rerun
with the same settings resumes. See `rocket_openvla.eval.libero` for the protocol and `rocket_openvla.eval.results`
for the results schema.
"""

import json
import logging
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rocket_openvla.cli import parse_config, run_entry_point  # noqa: E402
from rocket_openvla.eval.config import EvalConfig  # noqa: E402


def main() -> None:
    config = parse_config(EvalConfig)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from rocket_openvla.eval.runner import evaluate

    # SIGTERM unwinds like Ctrl-C, so the simulator workers are stopped too (finished episodes stay recorded).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    summary = evaluate(config)
    rates = {suite: round(values["success_rate"], 4) for suite, values in summary["suites"].items()}
    print(json.dumps({"suites": rates, "total": summary["total"]}))
    print(f"results: {config.output_dir / 'results.json'}")


if __name__ == "__main__":
    run_entry_point(main)
