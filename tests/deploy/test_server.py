"""The action server as users run it: `vla-scripts/serve_policy.py` in a subprocess on a free port, real HTTP
clients (ours on urllib, and OpenVLA-OFT's way: `requests` + `json_numpy`), answers equal to `Policy.predict`."""

import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import json_numpy
import numpy as np
import pytest
import requests

from rocket_openvla.deploy import Policy
from rocket_openvla.deploy.client import PolicyClient, ServerError
from rocket_openvla.eval.policies import LocalPolicy, ServerPolicy, make_policy
from tests.deploy.test_policy import INSTRUCTION, observation, save_policy, tiny_backbone

ENTRY = Path(__file__).resolve().parents[2] / "vla-scripts" / "serve_policy.py"
MAX_QUEUE = 4
MAX_BODY_BYTES = 1_000_000
FRAME_SIDE = 96  # the policy resizes any frame to 224; small frames keep the requests quick
STARTUP_TIMEOUT_S = 120
REQUESTS_PER_CLIENT = 5  # x MAX_QUEUE clients at once; the tiny OpenVLA answers in ~0.5 s on 2 CPU cores


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def oft_observation(seed: int = 0) -> dict:
    (primary, wrist), state = observation(seed, side=FRAME_SIDE)
    return {"full_image": primary, "wrist_image": wrist, "state": state, "instruction": INSTRUCTION}


@pytest.fixture(scope="module")
def policy_dir(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("served") / "policy"
    save_policy(tiny_backbone("openvla"), directory)
    return directory


@pytest.fixture(scope="module")
def server(policy_dir):
    """`(process, client)` of a server started as a user starts it; stopped (if still running) at the end."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ENTRY), "--policy_dir", str(policy_dir), "--port", str(port),
         "--max_queue", str(MAX_QUEUE), "--max_body_bytes", str(MAX_BODY_BYTES)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    client = PolicyClient(f"http://127.0.0.1:{port}", timeout_s=60)
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            client.health()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"the server did not start:\n{process.stdout.read()[-3000:]}")
            time.sleep(0.2)
    yield process, client
    if process.poll() is None:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def expected(policy_dir) -> np.ndarray:
    obs = oft_observation()
    return Policy.from_pretrained(policy_dir).predict([obs["full_image"], obs["wrist_image"]], INSTRUCTION,
                                                      obs["state"])


def test_act_answers_exactly_what_policy_predict_returns_for_our_client_and_oft_s(server, expected):
    _, client = server
    health = client.health()
    assert (health["backbone"], health["cameras"], health["chunk"], health["action_dim"], health["state_dim"]) == (
        "openvla", ["primary", "wrist"], 8, 7, 8)
    np.testing.assert_array_equal(client.act(oft_observation()), expected)
    # OpenVLA-OFT's client: json_numpy-encoded body through requests, answer a list of json-numpy arrays.
    url = f"{client.url}/act"
    answer = requests.post(url, data=json_numpy.dumps(oft_observation()), timeout=60)
    assert answer.status_code == 200
    np.testing.assert_array_equal(np.stack(json_numpy.loads(answer.text)), expected)
    # Its double encoding: {"encoded": <JSON string>} is answered with a JSON string.
    answer = requests.post(url, json={"encoded": json_numpy.dumps(oft_observation())}, timeout=60)
    np.testing.assert_array_equal(np.stack(json_numpy.loads(json.loads(answer.text))), expected)
    # Plain nested lists work too (curl-friendly).
    answer = requests.post(url, json=as_lists(oft_observation()), timeout=60)
    assert answer.status_code == 200, answer.text
    np.testing.assert_array_equal(np.stack(json_numpy.loads(answer.text)), expected)


def as_lists(obs: dict) -> dict:
    return {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in obs.items()}


def _with(**changes) -> dict:
    obs = oft_observation()
    obs.update(changes)
    return {key: value for key, value in obs.items() if value is not None}


BAD_REQUESTS = [
    (b'{"full_image": [1, 2', 400, "not valid JSON"),
    (json.dumps({**json.loads(json_numpy.dumps(oft_observation())),
                 "state": {"__numpy__": "@@@", "dtype": "<f4", "shape": [8]}}).encode(), 400, "not valid base64"),
    (json.dumps({"full_image": {"__numpy__": "AAAA", "dtype": "|O", "shape": [1]}}).encode(), 400,
     "not a plain numeric type"),
    (json.dumps({"full_image": {"__numpy__": "AAAA", "dtype": "|u1", "shape": [2, 2]}}).encode(), 400,
     "3 bytes for shape"),
    (json_numpy.dumps(_with(instruction=None)).encode(), 422, "missing"),
    (json_numpy.dumps(_with(wrist_image=None)).encode(), 422, "the policy takes 2 cameras"),
    (json_numpy.dumps(_with(full_image=np.zeros((96, 96, 3), np.float32))).encode(), 422, "primary frame is float32"),
    (json_numpy.dumps(_with(wrist_image=np.zeros((96, 96), np.uint8))).encode(), 422, "wrist frame is uint8"),
    (json_numpy.dumps(_with(state=None)).encode(), 422, "takes the robot state"),
    (json_numpy.dumps(_with(state=np.zeros(7, np.float32))).encode(), 422, r"state has shape \(7,\)"),
    (json_numpy.dumps(_with(instruction=7)).encode(), 422, "instruction must be a non-empty string"),
    (json_numpy.dumps(_with(unnorm_key="bridge")).encode(), 422, "has no statistics"),
    (json.dumps(as_lists(_with(full_image=np.full((2, 2, 3), 300)))).encode(), 422, "integers 0..255"),
    (json.dumps([1, 2, 3]).encode(), 422, "must be a JSON object"),
    (b"x" * (MAX_BODY_BYTES + 1), 413, "max_body_bytes"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_with_a_message_and_the_server_keeps_serving(server, expected, body, status, message):
    _, client = server
    answer = requests.post(f"{client.url}/act", data=body, headers={"Content-Type": "application/json"}, timeout=60)
    assert answer.status_code == status, answer.text
    assert re.search(message, answer.json()["error"]), answer.json()
    np.testing.assert_array_equal(client.act(oft_observation()), expected)


def test_a_bounded_concurrent_load_completes_without_error(server, expected):
    _, client = server
    results, errors = [], []

    def run_client() -> None:
        for _ in range(REQUESTS_PER_CLIENT):
            try:
                results.append(client.act(oft_observation()))
            except Exception as error:  # noqa: BLE001  (collected and reported below)
                errors.append(repr(error))

    threads = [threading.Thread(target=run_client) for _ in range(MAX_QUEUE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(results) == REQUESTS_PER_CLIENT * MAX_QUEUE
    for actions in results:
        np.testing.assert_array_equal(actions, expected)


def test_requests_beyond_the_queue_are_refused_with_503_and_the_rest_are_served(server, expected):
    _, client = server
    start, outcomes = threading.Barrier(3 * MAX_QUEUE), []

    def request() -> None:
        start.wait()
        try:
            outcomes.append(client.act(oft_observation()))
        except ServerError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=request) for _ in range(3 * MAX_QUEUE)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    refused = [o for o in outcomes if isinstance(o, ServerError)]
    served = [o for o in outcomes if not isinstance(o, ServerError)]
    assert refused and all(error.status == 503 and "max_queue" in error.message for error in refused)
    assert len(served) >= MAX_QUEUE
    for actions in served:
        np.testing.assert_array_equal(actions, expected)


def test_a_served_policy_and_a_local_one_answer_alike_with_frames_in_camera_order(policy_dir, server):
    _, client = server
    (primary, wrist), state = observation(seed=3)  # LIBERO's frames as the evaluation harness hands them
    frames = {"primary": primary, "wrist": wrist}
    local = make_policy(str(policy_dir))
    remote = make_policy(client.url)
    assert isinstance(local, LocalPolicy) and isinstance(remote, ServerPolicy)
    actions = local.act(frames, state, INSTRUCTION)
    assert actions.shape == (8, 7)
    np.testing.assert_allclose(remote.act(frames, state, INSTRUCTION), actions, atol=1e-5)
    swapped = {"primary": wrist, "wrist": primary}
    assert not np.allclose(local.act(swapped, state, INSTRUCTION), actions)


def test_sigterm_finishes_the_request_in_flight_then_exits_cleanly(server, expected):
    """Runs last in this module: it stops the server. The request is held in flight by sending its body in two parts,
    with the signal in between."""
    process, client = server
    body = json_numpy.dumps(oft_observation()).encode()
    connection = http.client.HTTPConnection(client.url.removeprefix("http://"), timeout=60)
    connection.putrequest("POST", "/act")
    connection.putheader("Content-Type", "application/json")
    connection.putheader("Content-Length", str(len(body)))
    connection.endheaders(body[: len(body) // 2])
    time.sleep(0.5)  # the server has the headers and is reading the body
    process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert process.poll() is None  # still running: the request is not finished
    connection.send(body[len(body) // 2:])
    answer = connection.getresponse()
    assert answer.status == 200
    np.testing.assert_array_equal(np.stack(json_numpy.loads(answer.read())), expected)
    assert process.wait(timeout=60) == 0
    with pytest.raises(OSError):
        client.health()
