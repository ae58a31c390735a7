"""JSON from untrusted clients: bounded before it can hurt.

`json.loads` on a request body has three traps: a body nested thousands deep
raises RecursionError (not ValueError, so handlers answer 500), an integer of
thousands of digits costs quadratic time and raises (or overflows `float()`
later), and NaN/Infinity are accepted though they are not JSON. `loads_json`
turns all of them into a ValueError with a reason, for a 400. Standard library
only: the backend's control API and the MCP server's admin routes both use it.
"""

from __future__ import annotations

import json
import math
import os
import stat
from typing import Any

__all__ = [
    "MAX_JSON_DEPTH",
    "MAX_JSON_FILE_BYTES",
    "MAX_JSON_INT_DIGITS",
    "loads_bounded",
    "loads_json",
    "read_json_file",
]

MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 18
#: Input files (scenarios, configs, grids, run.json, cache entries) are small.
MAX_JSON_FILE_BYTES = 16 * 2**20


def _strict_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_JSON_INT_DIGITS:
        raise ValueError(f"integer with {digits} digits (at most {MAX_JSON_INT_DIGITS})")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_depth(data: Any, limit: int) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        children = value.values() if isinstance(value, dict) else value
        if depth > limit:
            raise ValueError(f"nested deeper than {limit} levels")
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))


def loads_json(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` for untrusted bodies: ValueError (with a reason) on invalid JSON,
    nesting deeper than `max_depth`, integers longer than 18 digits, numbers that
    overflow a float, and NaN/Infinity (not JSON). A body nested thousands deep
    raises ValueError, not RecursionError."""
    try:
        parsed = json.loads(
            data,
            parse_int=_strict_int,
            parse_float=_finite_float,
            parse_constant=_no_constant,
        )
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8: {exc}") from None
    if isinstance(parsed, dict | list):
        _check_depth(parsed, max_depth)
    return parsed


def loads_bounded(data: bytes | str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """`json.loads` with only the nesting bounded: deeper than `max_depth` (even
    thousands deep) is a ValueError, never a RecursionError. For files and flags
    we read (numbers keep Python's JSON semantics; `loads_json` is for bodies)."""
    try:
        parsed = json.loads(data)
    except RecursionError:
        raise ValueError(f"nested deeper than {max_depth} levels") from None
    if isinstance(parsed, dict | list):
        _check_depth(parsed, max_depth)
    return parsed


def read_json_file(path: str | os.PathLike[str], *, max_bytes: int = MAX_JSON_FILE_BYTES,
                   max_depth: int = MAX_JSON_DEPTH) -> Any:
    """JSON from a file, bounded: OSError if it cannot be opened; ValueError (with a
    reason) if it is not a regular file (a FIFO or a device would block or never
    end), is larger than `max_bytes`, is not UTF-8 JSON, or nests deeper than
    `max_depth`."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, then is refused
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError("not a regular file")
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"not UTF-8 text ({exc.reason})") from None
    return loads_bounded(text, max_depth=max_depth)
