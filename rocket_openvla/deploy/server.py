"""The action server: a `Policy` behind OpenVLA-OFT's `/act` protocol (FastAPI + uvicorn).

    python vla-scripts/serve_policy.py --policy_dir runs/quickstart/merged [--host 127.0.0.1 --port 8777]

`POST /act` takes OFT's observation, a JSON object (arrays json-numpy encoded, or nested lists):
    full_image     uint8 [H, W, 3]   the primary camera
    *wrist*        uint8 [H, W, 3]   each wrist camera, in the order of the request (e.g. wrist_image)
    state          [state_dim]       the raw robot state (when the policy takes one)
    instruction    str               the task
    unnorm_key     str, optional     the dataset whose statistics scale the actions
Other keys are ignored. The answer is OFT's: a JSON list of `chunk` json-numpy float32 arrays `[action_dim]`,
un-normalised. A body `{"encoded": "<the observation as a JSON string>"}` (OFT's double encoding) is answered with
the list as a JSON string. `GET /health` describes the policy (backbone, cameras, state and action sizes).

Errors are JSON `{"error": message}`: 400 for a body that is not JSON / json-numpy, 413 above `max_body_bytes`,
422 for an observation the policy cannot take (missing field, wrong type, shape or dtype), 503 when `max_queue`
requests are already waiting. The model runs one request at a time, in one worker thread, so the event loop keeps
answering (health, refusals) meanwhile. SIGINT / SIGTERM stop accepting connections and finish the requests in
flight before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from rocket_openvla.deploy.policy import ObservationError, Policy
from rocket_openvla.deploy.wire import WireError, dumps, loads
from rocket_openvla.errors import ConfigError

logger = logging.getLogger(__name__)
PRIMARY_IMAGE_KEY = "full_image"
WRIST_MARKER = "wrist"


@dataclass
class ServeConfig:
    """Serve a policy over HTTP with OpenVLA-OFT's `/act` protocol."""

    # A merged policy directory (merge_lora.py's output), a run directory (its latest checkpoint) or a checkpoint.
    policy_dir: Path = Path("runs/quickstart/merged")
    # Base model of a policy that holds only a LoRA adapter; null: the base its adapter records.
    base: Path | None = None
    # Address to bind. 127.0.0.1 serves this machine only; 0.0.0.0 serves the network (no authentication!).
    host: str = "127.0.0.1"
    # Port (OpenVLA-OFT's deploy server: 8777).
    port: int = 8777
    # Where the model runs: "cpu", "cuda", "cuda:1", ...
    device: str = "cpu"
    # Weight dtype: "bfloat16", "float32", "float16"; null: the run's backbone.dtype.
    dtype: str | None = None
    # Requests allowed to wait for the model; more are refused with 503 at once.
    max_queue: int = 8
    # Largest request body accepted (413 above it). Two 256 x 256 json-numpy frames take ~0.3 MB.
    max_body_bytes: int = 16 * 2**20
    # Seconds the server waits for requests in flight after SIGINT / SIGTERM.
    shutdown_timeout_s: float = 30.0
    # Dataset whose statistics scale the actions of requests that name none; null: the policy's only dataset.
    unnorm_key: str | None = None
    # Seed of the starting noise of sampling heads (diffusion, flow matching), reset on every request.
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.port < 2**16:
            raise ConfigError(f"port={self.port}; use 0..65535")
        for name in ("max_queue", "max_body_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}; use 1 or more")


def observation_from_payload(payload: Any, cameras: tuple[str, ...]) -> dict[str, Any]:
    """OFT's observation (module docstring) -> `Policy.predict` keyword arguments.

    Raises:
        ObservationError: a field is missing or has the wrong type.
    """
    if not isinstance(payload, dict):
        raise ObservationError(f"the observation must be a JSON object, got {type(payload).__name__}")
    wrist_keys = [key for key in payload if WRIST_MARKER in key]
    missing = [key for key in ("instruction", PRIMARY_IMAGE_KEY) if key not in payload]
    if missing:
        raise ObservationError(f"missing {missing}; send {PRIMARY_IMAGE_KEY}, the *wrist* images, state, instruction")
    if len(wrist_keys) != len(cameras) - 1:
        raise ObservationError(
            f"got wrist images {wrist_keys}; the policy takes {len(cameras)} cameras ({', '.join(cameras)}): "
            f"{PRIMARY_IMAGE_KEY} and {len(cameras) - 1} key(s) containing '{WRIST_MARKER}'"
        )
    images = [_image(payload[key], key) for key in (PRIMARY_IMAGE_KEY, *wrist_keys)]
    unnorm_key = payload.get("unnorm_key")
    if unnorm_key is not None and not isinstance(unnorm_key, str):
        raise ObservationError(f"unnorm_key must be a string, got {type(unnorm_key).__name__}")
    state = payload.get("state")
    if state is not None:
        state = _numbers(state, "state")
    return {"images": images, "instruction": payload["instruction"], "state": state, "unnorm_key": unnorm_key}


def _image(value: Any, key: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    array = _numbers(value, key)
    if array.size and (not np.issubdtype(array.dtype, np.integer) or array.min() < 0 or array.max() > 255):
        raise ObservationError(f"{key} as a nested list must hold integers 0..255 (uint8 RGB [H, W, 3])")
    return array.astype(np.uint8)


def _numbers(value: Any, key: str) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    try:
        array = np.asarray(value)
    except ValueError as error:  # ragged lists
        raise ObservationError(f"{key} is not a rectangular array: {error}") from error
    if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
        raise ObservationError(f"{key} must hold numbers, got {array.dtype} values")
    return array


def create_app(policy: Policy, config: ServeConfig) -> FastAPI:
    """The FastAPI app serving `policy` (module docstring)."""
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        worker.shutdown(wait=True)

    app = FastAPI(title="rocket_openvla action server", lifespan=lifespan)
    waiting = 0  # requests admitted and not yet answered

    @app.get("/health")
    async def health() -> dict[str, Any]:
        chunk, action_dim = policy.action_shape
        return {
            "status": "ok", "policy": policy.source, "backbone": policy.config.backbone.type,
            "cameras": list(policy.cameras), "image_keys": [PRIMARY_IMAGE_KEY, f"*{WRIST_MARKER}*"],
            "state_dim": policy.state_dim, "chunk": chunk, "action_dim": action_dim,
            "unnorm_keys": policy.unnorm_keys, "image_size": policy.config.image_size,
            "center_crop": policy.config.center_crop, "queue": waiting, "max_queue": config.max_queue,
        }

    @app.post("/act")
    async def act(request: Request) -> Response:
        nonlocal waiting
        body = await _read_body(request, config.max_body_bytes)
        if isinstance(body, Response):
            return body
        try:
            payload = loads(body)
            double_encoded = isinstance(payload, dict) and set(payload) == {"encoded"}
            if double_encoded:
                if not isinstance(payload["encoded"], str):
                    raise WireError("'encoded' must be the observation as a JSON string")
                payload = loads(payload["encoded"])
        except WireError as error:
            return _error(400, str(error))
        try:
            observation = observation_from_payload(payload, policy.cameras)
            observation["unnorm_key"] = observation["unnorm_key"] or config.unnorm_key
        except ObservationError as error:
            return _error(422, str(error))
        if waiting >= config.max_queue:
            return _error(503, f"{waiting} requests are waiting for the model (max_queue={config.max_queue})")
        waiting += 1
        try:
            actions = await asyncio.get_running_loop().run_in_executor(worker, lambda: policy.predict(**observation))
        except ObservationError as error:
            return _error(422, str(error))
        except Exception:
            logger.exception("the policy failed on a request")
            return _error(500, "the policy failed on this request; see the server log")
        finally:
            waiting -= 1
        answer = dumps(list(actions))
        return Response(dumps(answer) if double_encoded else answer, media_type="application/json")

    return app


async def _read_body(request: Request, limit: int) -> bytes | Response:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return _error(413, f"the body has {declared} bytes, more than max_body_bytes={limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return _error(413, f"the body is larger than max_body_bytes={limit}")
    return bytes(body)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def serve(config: ServeConfig) -> None:
    """Load the policy, then serve it until SIGINT / SIGTERM."""
    import uvicorn

    policy = Policy.from_pretrained(config.policy_dir, base=config.base, device=config.device, dtype=config.dtype,
                                    seed=config.seed)
    app = create_app(policy, config)
    logger.info("serving %s (%s) on http://%s:%d/act", policy.source, policy.config.backbone.type, config.host,
                config.port)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_level="info", timeout_graceful_shutdown=config.shutdown_timeout_s,
    ))
    # uvicorn shuts down gracefully on SIGINT / SIGTERM, then raises the signal again with the handlers it found:
    # these make that a normal exit (status 0) instead of a KeyboardInterrupt traceback or death by SIGTERM.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, _exit_after_shutdown)
    server.run()


def _exit_after_shutdown(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
