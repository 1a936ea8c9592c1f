"""A small client of the action server (standard library only), for robots, evaluation loops and scripts.

    client = PolicyClient("http://127.0.0.1:8777")
    client.health()["cameras"]                                        # ['primary', 'wrist']
    actions = client.act({"full_image": agent_view, "wrist_image": wrist_view, "state": state,
                          "instruction": "put the bowl on the plate"})   # float32 [chunk, action_dim]
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from typing import Any

import numpy as np

from rocket_openvla.deploy.wire import dumps, loads


class ServerError(RuntimeError):
    """The server refused or failed a request: `status` (HTTP) and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status, self.message = status, message


class PolicyClient:
    """Talks to `vla-scripts/serve_policy.py` (OpenVLA-OFT's `/act` protocol)."""

    def __init__(self, url: str = "http://127.0.0.1:8777", timeout_s: float = 60.0) -> None:
        self.url, self.timeout_s = url.rstrip("/"), timeout_s

    def health(self) -> dict[str, Any]:
        """The policy's description: backbone, cameras, state_dim, chunk, action_dim, unnorm_keys, ..."""
        return json.loads(self._request(urllib.request.Request(f"{self.url}/health")))

    def act(self, observation: Mapping[str, Any]) -> np.ndarray:
        """The un-normalised action chunk `[chunk, action_dim]` for OFT's observation dict (NumPy arrays welcome)."""
        request = urllib.request.Request(
            f"{self.url}/act", data=dumps(dict(observation)).encode(), headers={"Content-Type": "application/json"}
        )
        return np.stack(loads(self._request(request)))

    def _request(self, request: urllib.request.Request) -> bytes:
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            try:
                message = json.loads(body)["error"]
            except (ValueError, KeyError, TypeError):
                message = body.decode(errors="replace")
            raise ServerError(error.code, message) from None
