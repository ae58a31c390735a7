"""Error codes and the refusal shape: what a caller sees when cblab says no.

Standard library only, so every layer can import it: the demo server's tools,
the FastMCP middleware and client guard (`cblab.integrations`), the load
generator, the simulator, the run recorder and the analyses.

Error codes fill the event rows' `error_type` column (`cblab.schema`):

=========================  =====================================================
code                       meaning
=========================  =====================================================
`dependency_unavailable`   a circuit breaker refused the call (open, or half-open
                           with every trial slot taken)
`local_overload`           a bulkhead refused the call: too many calls to that
                           dependency already in progress on this process
`deadline_exceeded`        no answer within the whole-call deadline
`http_<status>`            the dependency answered 429 or 5xx (`http_error(503)`)
`bad_response`             a 200 whose body is not a JSON object
`not_found`                404: the dependency works, the thing does not exist
`invalid_argument`         the tool refused its arguments
`tool_error`               the client got another `isError` result
`in_flight_cap`            the load generator dropped an arrival (too many in flight)
`ConnectError`, ...        an httpx exception, by class name
=========================  =====================================================

A refusal is reported to an MCP client as a tool execution error (`isError`)
whose structured content is `refusal.structured()`::

    {"error": "dependency_unavailable", "breaker": "github", "state": "open",
     "retry_after_s": 12.5}

and whose text is `refusal.message`, for a model to read (the MCP spec has no
retry-hint field, so the text says it too). `retry_after_s` is None when no retry
time is known (a breaker forced open by an operator). Build one with
`unavailable(breaker, state, retry_after)` (a breaker said no) or
`local_overload(breaker, state, limit, waited)` (a bulkhead said no); read one
back from a result's structured content with `Refusal.parse(...)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BAD_RESPONSE",
    "CONNECT_ERROR",
    "DEADLINE_EXCEEDED",
    "DEPENDENCY_UNAVAILABLE",
    "IN_FLIGHT_CAP",
    "INVALID_ARGUMENT",
    "LOCAL_OVERLOAD",
    "NOT_FOUND",
    "READ_ERROR",
    "REFUSAL_CODES",
    "TOOL_ERROR",
    "Refusal",
    "http_error",
    "local_overload",
    "unavailable",
]

#: A circuit breaker refused the call: the dependency is failing.
DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
#: No local slot came free in time (bulkhead): this process is busy, the dependency is not blamed.
LOCAL_OVERLOAD = "local_overload"
DEADLINE_EXCEEDED = "deadline_exceeded"
BAD_RESPONSE = "bad_response"
NOT_FOUND = "not_found"
INVALID_ARGUMENT = "invalid_argument"
TOOL_ERROR = "tool_error"
IN_FLIGHT_CAP = "in_flight_cap"
#: httpx's exception names for a refused connection and a reset mid-answer.
CONNECT_ERROR = "ConnectError"
READ_ERROR = "ReadError"

#: The codes of calls refused before they reached the dependency.
REFUSAL_CODES: tuple[str, ...] = (DEPENDENCY_UNAVAILABLE, LOCAL_OVERLOAD)


def http_error(status: int) -> str:
    """The code for an HTTP error answer: `http_error(503) == "http_503"`."""
    return f"http_{status}"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A call refused on the caller's side, before it reached the dependency.

    `error` is one of `REFUSAL_CODES`; `breaker` names the breaker (or the
    bulkhead's group) that refused; `state` is the breaker's state ("open",
    "half_open", ...); `retry_after_s` is seconds until a retry may succeed, None
    when unknown; `message` is the text for a model.
    """

    error: str
    breaker: str
    state: str
    retry_after_s: float | None
    message: str = ""

    def __post_init__(self) -> None:
        if self.error not in REFUSAL_CODES:
            raise ValueError(f"error must be one of {REFUSAL_CODES}, got {self.error!r}")

    def structured(self) -> dict[str, Any]:
        """The structured content: `{"error", "breaker", "state", "retry_after_s"}`."""
        return {
            "error": self.error,
            "breaker": self.breaker,
            "state": self.state,
            "retry_after_s": self.retry_after_s,
        }

    @classmethod
    def parse(cls, structured: Any, message: str = "") -> Refusal | None:
        """The refusal in a tool result's structured content, or None if it is not one."""
        if not isinstance(structured, Mapping) or structured.get("error") not in REFUSAL_CODES:
            return None
        breaker, state = structured.get("breaker"), structured.get("state")
        retry = structured.get("retry_after_s")
        if not isinstance(retry, int | float) or isinstance(retry, bool):
            retry = None
        return cls(
            error=structured["error"],
            breaker=breaker if isinstance(breaker, str) else "",
            state=state if isinstance(state, str) else "",
            retry_after_s=retry,
            message=message,
        )


def unavailable(breaker: str, state: str, retry_after: float) -> Refusal:
    """A breaker refused the call; `retry_after` is its `CircuitOpenError.retry_after`
    (seconds, `math.inf` when an operator forced it open)."""
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
    return Refusal(DEPENDENCY_UNAVAILABLE, breaker, state, retry, text)


def local_overload(breaker: str, state: str, limit: int, waited: float) -> Refusal:
    """A bulkhead refused the call: all `limit` local slots for `breaker` stayed busy
    for `waited` seconds."""
    text = (
        f"This server is busy: all {limit} of its slots for the {breaker} dependency "
        f"stayed in use for {waited:g} s. The dependency itself is not failing; retry shortly."
    )
    return Refusal(LOCAL_OVERLOAD, breaker, state, round(waited, 3), text)
