"""The refusal shape shared by the middleware, the demo server and the client guard.

Standard library only. A refusal is an `isError` tool result whose structured
content a program can act on and whose text a model can act on:

    {"error": "dependency_unavailable", "breaker": "search-api", "state": "open",
     "retry_after_s": 12.5}

``retry_after_s`` is ``null`` when an operator forced the breaker open (no
automatic retry time). The MCP spec has no retry-hint field, so the text says it too.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "DEPENDENCY_UNAVAILABLE",
    "LOCAL_OVERLOAD",
    "local_overload",
    "unavailable",
]

#: The breaker refused the call: the dependency is failing.
DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
#: No local slot came free in time (bulkhead): the server is busy, the dependency is not blamed.
LOCAL_OVERLOAD = "local_overload"


def unavailable(breaker: str, state: str, retry_after: float) -> tuple[str, dict[str, Any]]:
    """`(text, structured_content)` for a call the breaker refused."""
    if math.isinf(retry_after):
        when = "it was forced open by an operator; retry later"
        retry: float | None = None
    else:
        retry = round(retry_after, 3)
        when = f"retry in {retry_after:.1f} s" if retry_after >= 0.05 else "retry now"
    text = (
        f"The {breaker} dependency is temporarily unavailable (circuit breaker "
        f"{state.replace('_', '-')}): {when}."
    )
    return text, {
        "error": DEPENDENCY_UNAVAILABLE,
        "breaker": breaker,
        "state": state,
        "retry_after_s": retry,
    }


def local_overload(
    breaker: str, state: str, limit: int, waited: float
) -> tuple[str, dict[str, Any]]:
    """`(text, structured_content)` for a call refused because every local slot stayed busy."""
    text = (
        f"This server is busy: all {limit} of its slots for the {breaker} dependency "
        f"stayed in use for {waited:g} s. The dependency itself is not failing; retry shortly."
    )
    return text, {
        "error": LOCAL_OVERLOAD,
        "breaker": breaker,
        "state": state,
        "retry_after_s": round(waited, 3),
    }
