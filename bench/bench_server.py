"""Latency and throughput of the action server (`vla-scripts/serve_policy.py`) for a tiny random policy.

Rows, same policy and observation (two 256 x 256 frames, LIBERO's state):
  in-process   `Policy.predict` called directly (the floor: frame preparation + one model pass)
  http 1       one client, requests back to back (p50 / p99 latency)
  http C       C clients at once (requests/s; the server runs the model one request at a time)

Usage:
    python bench/bench_server.py                        # tiny OpenVLA on CPU
    python bench/bench_server.py --backbone smolvlm --requests 100 --clients 4 --json bench_server.json
    python bench/bench_server.py --quick --json server.json  # 8 requests per row; the report is bench/report.py's
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import draccus
import numpy as np
from report import SEED, Ratio, parse_args, print_ratios, settings_of, write_report

from rocket_openvla.backbones import BackboneConfig
from rocket_openvla.data.config import CAMERA_VIEWS
from rocket_openvla.deploy import DeployConfig, Policy
from rocket_openvla.deploy.client import PolicyClient
from rocket_openvla.normalization import DatasetStatistics, FeatureStatistics

ENTRY = Path(__file__).resolve().parents[1] / "vla-scripts" / "serve_policy.py"
INSTRUCTION = "put the black bowl on the plate"
QUICK = {"requests": 8}  # every row kept: 2 requests per client at the default 4 clients


def write_tiny_policy(backbone: str, directory: Path) -> None:
    """A random tiny policy of `backbone` with LIBERO-sized statistics, laid out as merge_lora.py writes it."""
    config = draccus.decode(BackboneConfig, {"type": backbone})
    adapter = config.build()
    values = np.random.default_rng(SEED).uniform(-1, 1, (100, 8))
    adapter.set_dataset_statistics({"libero": DatasetStatistics(
        action=FeatureStatistics.from_values(values[:, :7]), proprio=FeatureStatistics.from_values(values))})
    adapter.save_pretrained(directory)
    DeployConfig(config, CAMERA_VIEWS, 224, True).save(directory)


def percentile_ms(seconds: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1e3, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="openvla")
    parser.add_argument("--requests", type=int, default=40, help="sequential requests (latency rows)")
    parser.add_argument("--clients", type=int, default=4)
    args = parse_args(parser, QUICK)

    rng = np.random.default_rng(SEED)
    frames = [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8) for _ in CAMERA_VIEWS]
    state = rng.uniform(-1, 1, 8).astype(np.float32)
    observation = {"full_image": frames[0], "wrist_image": frames[1], "state": state, "instruction": INSTRUCTION}
    with tempfile.TemporaryDirectory() as scratch:
        policy_dir = Path(scratch) / "policy"
        write_tiny_policy(args.backbone, policy_dir)
        policy = Policy.from_pretrained(policy_dir)
        policy.predict(frames, INSTRUCTION, state)
        direct = []
        for _ in range(args.requests):
            start = time.perf_counter()
            policy.predict(frames, INSTRUCTION, state)
            direct.append(time.perf_counter() - start)
        del policy

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        server = subprocess.Popen([sys.executable, str(ENTRY), "--policy_dir", str(policy_dir), "--port", str(port),
                                   "--max_queue", str(args.clients)], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        client = PolicyClient(f"http://127.0.0.1:{port}")
        try:
            while True:
                try:
                    client.health()
                    break
                except OSError:
                    if server.poll() is not None:
                        raise SystemExit("the server did not start") from None
                    time.sleep(0.2)
            client.act(observation)
            sequential = []
            for _ in range(args.requests):
                start = time.perf_counter()
                client.act(observation)
                sequential.append(time.perf_counter() - start)

            def run_client() -> None:
                for _ in range(args.requests // args.clients):
                    client.act(observation)

            threads = [threading.Thread(target=run_client) for _ in range(args.clients)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            concurrent_rate = args.clients * (args.requests // args.clients) / (time.perf_counter() - start)
        finally:
            server.terminate()
            server.wait()

    results = {
        "backbone": args.backbone,
        "requests": args.requests,
        "in_process_p50_ms": percentile_ms(direct, 50),
        "http_p50_ms": percentile_ms(sequential, 50),
        "http_p99_ms": percentile_ms(sequential, 99),
        "http_sequential_req_per_s": len(sequential) / sum(sequential),
        f"http_{args.clients}_clients_req_per_s": concurrent_rate,
    }
    results["http_overhead_ratio"] = results["http_p50_ms"] / results["in_process_p50_ms"]
    print(f"tiny {args.backbone} on {sys.platform}, {args.requests} requests")
    print(f"  in-process   p50 {results['in_process_p50_ms']:8.1f} ms")
    print(f"  http 1       p50 {results['http_p50_ms']:8.1f} ms   p99 {results['http_p99_ms']:8.1f} ms   "
          f"{results['http_sequential_req_per_s']:.2f} req/s   (p50 x{results['http_overhead_ratio']:.2f} in-process)")
    print(f"  http {args.clients}                                          {concurrent_rate:.2f} req/s")
    ratios = [
        Ratio("http p50 / in-process p50", results["http_overhead_ratio"], "latency, x (higher = slower than direct)"),
        Ratio(f"http {args.clients} clients / http 1", concurrent_rate / results["http_sequential_req_per_s"],
              "throughput (req/s), x (higher = more requests served)"),
    ]
    print_ratios(ratios)
    write_report(args.json, "server", settings_of(args), results, ratios)


if __name__ == "__main__":
    main()
