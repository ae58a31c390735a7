"""JSON-RPC messages as the proxy sees them: plain dicts, never re-modelled.

The proxy forwards what the client and the server send byte for byte where it
can (HTTP upstreams) and message for message otherwise (stdio upstreams); these
helpers build the few messages it writes itself (injected faults, an upstream
that is down, an answer too large) and read the ones it must look into (a
``tools/call`` and its answer, Server-Sent Events).
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = [
    "INTERNAL_ERROR",
    "RESULT_TOO_LARGE",
    "UPSTREAM_DOWN",
    "SseSplitter",
    "dumps",
    "error_message",
    "find_id",
    "is_error_result",
    "parse_message",
    "sse_event",
    "tool_name",
]

INTERNAL_ERROR = -32603
METHOD_NOT_FOUND = -32601
PARSE_ERROR = -32700
#: error_type of a call the proxy could not forward: the upstream is down or restarting
UPSTREAM_DOWN = "upstream_down"
#: error_type of a call whose answer was over `max_result_bytes`
RESULT_TOO_LARGE = "result_too_large"


def dumps(message: Any) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()


def parse_message(body: bytes) -> Any:
    """The JSON value of a body, or None when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def error_message(request_id: Any, code: int, message: str,
                  data: dict[str, Any] | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def is_error_result(request_id: Any, text: str, structured: dict[str, Any],
                    modern: bool = False) -> dict[str, Any]:
    """A ``tools/call`` answer with ``isError: true``, as a server reports a failed
    dependency (`modern`: protocol 2026-07-28, whose results carry ``resultType``)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}],
                              "structuredContent": structured, "isError": True}
    if modern:
        result["resultType"] = "complete"
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def tool_name(message: Any) -> str | None:
    """The tool a ``tools/call`` request names (None for anything else)."""
    if not isinstance(message, dict) or message.get("method") != "tools/call" or "id" not in message:
        return None
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return name if isinstance(name, str) else ""


def sse_event(message: Any) -> bytes:
    return b"event: message\ndata: " + dumps(message) + b"\n\n"


class SseSplitter:
    """Cuts a Server-Sent Events byte stream into whole events (each ending in a blank
    line), so each can be looked into and forwarded as a unit. `max_event_bytes` bounds
    the one in progress: `feed` raises OverflowError past it."""

    _END = re.compile(rb"\r\n\r\n|\n\n|\r\r")

    def __init__(self, max_event_bytes: int) -> None:
        self.max_event_bytes = max_event_bytes
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        self._buffer += chunk
        events: list[bytes] = []
        while True:
            end = self._END.search(self._buffer)
            if end is None:
                break
            events.append(self._buffer[: end.end()])
            self._buffer = self._buffer[end.end():]
        if len(self._buffer) > self.max_event_bytes:
            raise OverflowError(len(self._buffer))
        return events

    def rest(self) -> bytes:
        rest, self._buffer = self._buffer, b""
        return rest

    @staticmethod
    def data(event: bytes) -> Any:
        """The JSON in an event's ``data:`` lines (None if none, or not JSON)."""
        lines = [line[5:].lstrip(b" ") for line in event.splitlines() if line.startswith(b"data:")]
        return parse_message(b"\n".join(lines)) if lines else None


_ID_AT_START = re.compile(rb'"id"\s*:\s*(-?\d+)')


def find_id(head: bytes, tail: bytes, pending: set[int]) -> int | None:
    """The id of a JSON-RPC answer too large to read, from its first and last bytes:
    servers put ``"id"`` before the result (Python SDK) or after it (TypeScript SDK).
    Only ids the proxy is waiting for count (a result may contain "id" too)."""
    for part in (tail, head):
        for match in reversed(list(_ID_AT_START.finditer(part))):
            value = int(match.group(1))
            if value in pending:
                return value
    return None
