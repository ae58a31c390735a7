"""The refusal shape shared by the middleware, the demo server and the client guard.

Its home is `cblab.codes` (standard library only, importable from every layer);
this module keeps the middleware's `(text, structured_content)` form of it. A
refusal is an `isError` tool result whose structured content a program can act
on and whose text a model can act on:

    {"error": "dependency_unavailable", "breaker": "search-api", "state": "open",
     "retry_after_s": 12.5}

``retry_after_s`` is ``null`` when an operator forced the breaker open (no
automatic retry time). The MCP spec has no retry-hint field, so the text says it too.
"""

from __future__ import annotations

from typing import Any

from cblab import codes
from cblab.codes import DEPENDENCY_UNAVAILABLE, LOCAL_OVERLOAD

__all__ = [
    "DEPENDENCY_UNAVAILABLE",
    "LOCAL_OVERLOAD",
    "local_overload",
    "unavailable",
]


def unavailable(breaker: str, state: str, retry_after: float) -> tuple[str, dict[str, Any]]:
    """`(text, structured_content)` for a call the breaker refused."""
    refusal = codes.unavailable(breaker, state, retry_after)
    return refusal.message, refusal.structured()


def local_overload(
    breaker: str, state: str, limit: int, waited: float
) -> tuple[str, dict[str, Any]]:
    """`(text, structured_content)` for a call refused because every local slot stayed busy."""
    refusal = codes.local_overload(breaker, state, limit, waited)
    return refusal.message, refusal.structured()
