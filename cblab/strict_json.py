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
from typing import Any

__all__ = ["MAX_JSON_DEPTH", "MAX_JSON_INT_DIGITS", "loads_json"]

MAX_JSON_DEPTH = 32
MAX_JSON_INT_DIGITS = 18


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
