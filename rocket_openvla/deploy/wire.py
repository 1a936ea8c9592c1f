"""The JSON wire format of the action server: the `json-numpy` encoding OpenVLA-OFT's clients send and read.

An array travels as `{"__numpy__": <base64 of its C-order bytes>, "dtype": "<f4", "shape": [7]}` (a numpy dtype
descriptor string); a NumPy scalar has `"shape": []`. Decoding here is strict, because requests come from the
network: only plain numeric dtypes (no objects, no structured types), a well-formed shape, and exactly as many
bytes as the shape and dtype need; anything else is a `WireError` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from typing import Any

import numpy as np

ARRAY_KEY = "__numpy__"
_NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats
MAX_DIMS = 8


class WireError(ValueError):
    """A request body that is not valid JSON / json-numpy (the message names the field)."""


def encode_array(array: np.ndarray | np.generic) -> dict[str, Any]:
    """The json-numpy object of `array`."""
    array = np.asarray(array)
    return {ARRAY_KEY: base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii"),
            "dtype": array.dtype.str, "shape": list(array.shape)}


def dumps(value: Any) -> str:
    """JSON with every NumPy array and scalar inside `value` json-numpy encoded."""
    return json.dumps(value, default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, (np.ndarray, np.generic)):
        return encode_array(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def loads(text: str | bytes) -> Any:
    """Parse JSON, turning every json-numpy object into a NumPy array (scalars: 0-d arrays)."""
    try:
        return _decode_arrays(json.loads(text), "body")
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WireError(f"the body is not valid JSON: {error}") from error


def _decode_arrays(value: Any, where: str) -> Any:
    if isinstance(value, dict):
        if ARRAY_KEY in value:
            return decode_array(value, where)
        return {key: _decode_arrays(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [_decode_arrays(item, f"{where}[{index}]") for index, item in enumerate(value)]
    return value


def decode_array(value: dict[str, Any], where: str) -> np.ndarray:
    """One json-numpy object -> a read-only NumPy array, validated (module docstring)."""
    if set(value) != {ARRAY_KEY, "dtype", "shape"}:
        raise WireError(
            f"{where}: a json-numpy array has exactly the keys {ARRAY_KEY}, dtype, shape; got {sorted(value)}"
        )
    try:
        dtype = np.dtype(value["dtype"])
    except (TypeError, ValueError) as error:
        raise WireError(f"{where}: unknown dtype {value['dtype']!r}") from error
    if dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"{where}: dtype {value['dtype']!r} is not a plain numeric type")
    shape = value["shape"]
    if not isinstance(shape, list) or len(shape) > MAX_DIMS or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise WireError(f"{where}: shape must be a list of at most {MAX_DIMS} non-negative integers, got {shape!r}")
    if not isinstance(value[ARRAY_KEY], str):
        raise WireError(f"{where}: {ARRAY_KEY} must be a base64 string")
    try:
        data = base64.b64decode(value[ARRAY_KEY], validate=True)
    except binascii.Error as error:
        raise WireError(f"{where}: {ARRAY_KEY} is not valid base64") from error
    expected = math.prod(shape) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"{where}: {len(data)} bytes for shape {shape} of {dtype.str} (needs {expected})")
    return np.frombuffer(data, dtype=dtype).reshape(shape)
