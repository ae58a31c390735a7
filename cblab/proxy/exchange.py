"""One HTTP exchange through the proxy: what the client sent, what goes back.

`Inbound` is the client's request as received (method, headers, body, the parsed
JSON-RPC message). `Reply` is what the proxy sends back: a status, headers and a
body that may still be streaming from the upstream; once the body is sent,
`answer` holds the JSON-RPC answer to the request when the proxy looked for it
(a ``tools/call``, to record its outcome) and `error_type` says why the proxy
answered itself (``upstream_down``, ``result_too_large``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from .messages import (
    INTERNAL_ERROR,
    RESULT_TOO_LARGE,
    UPSTREAM_DOWN,
    dumps,
    error_message,
)

__all__ = ["Inbound", "Reply", "down_reply", "json_reply", "one_chunk", "too_large_reply"]

Headers = list[tuple[bytes, bytes]]
MODERN_VERSION = b"2026-07-28"


@dataclass
class Inbound:
    method: str
    headers: Headers
    body: bytes = b""
    message: Any = None
    #: look into the answer (a tools/call's outcome, a tools/list's names)
    watch: bool = False

    @property
    def modern(self) -> bool:
        """Protocol 2026-07-28 or later (its results carry ``resultType``)."""
        version = next((v for k, v in self.headers if k == b"mcp-protocol-version"), b"")
        return version >= MODERN_VERSION

    @property
    def request_id(self) -> Any:
        return self.message.get("id") if isinstance(self.message, dict) else None


async def one_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


@dataclass
class Reply:
    status: int
    headers: Headers
    body: AsyncIterator[bytes]
    answer: Any = None
    error_type: str | None = None
    close: Callable[[], Awaitable[None]] | None = field(default=None, repr=False)

    async def aclose(self) -> None:
        if self.close is not None:
            close, self.close = self.close, None
            await close()


def json_reply(message: Any, status: int = 200, *, error_type: str | None = None) -> Reply:
    """A reply the proxy writes itself (its answer is known at once)."""
    body = dumps(message)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    return Reply(status, headers, one_chunk(body), answer=message, error_type=error_type)


def down_reply(request_id: Any, state: str, reason: str) -> Reply:
    message = error_message(
        request_id, INTERNAL_ERROR,
        f"upstream MCP server unavailable ({state}): {reason} (cblab proxy)",
        {"upstream": state, "reason": reason})
    return json_reply(message, 502, error_type=UPSTREAM_DOWN)


def too_large_reply(request_id: Any, limit: int) -> Reply:
    message = error_message(
        request_id, INTERNAL_ERROR,
        f"result too large: the upstream's answer is over {limit} bytes, the proxy's "
        "max_result_bytes (cblab proxy)", {"max_result_bytes": limit})
    return json_reply(message, error_type=RESULT_TOO_LARGE)
