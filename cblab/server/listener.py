"""Connection limits for the uvicorn listeners (`cblab serve`'s and `cblab proxy`'s MCP port).

uvicorn closes a kept-alive connection after its keep-alive timeout, but a
connection that never sends a request, or sends one a byte at a time
(slowloris), is held for ever, and nothing caps how many are open. The
backend's own HTTP server (`cblab.backend.http`) already enforces `Limits`; this
module gives uvicorn the same rules, with the same `Limits` object:

- the request head and body must arrive complete within `header_timeout_s` of
  the connection being accepted, or of the first byte of a later request on a
  kept-alive connection. A silent connection is closed quietly; a half-sent
  request gets a 408 and is closed;
- a kept-alive connection idle for `idle_timeout_s` is closed (uvicorn's own
  keep-alive timer, set to this value);
- at most `max_connections` open connections: the next one is answered 503 at
  once and closed, so it costs nothing and waits for nothing.

Once a request is complete nothing here limits its response: a long answer or a
stream (`GET /mcp`) runs as long as the app wants.

    limits = Limits(header_timeout_s=10, idle_timeout_s=30)
    config = uvicorn.Config(app, **uvicorn_options(limits))
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from cblab.backend.http import Limits

__all__ = ["DEFAULT_LISTENER_LIMITS", "Limits", "ListenerStats", "uvicorn_options"]

# After an error response: half-close, then discard what the client still sends for a
# moment before closing (closing with unread data resets the connection, and the
# client could lose the response). The backend's rule (cblab.backend.http).
_LINGER_S = 1.0
_REFUSAL_LINGER_S = 0.25
_LINGER_MAX_BYTES = 1 << 20
_MAX_LINGERING_REFUSALS = 4  # a flood of refusals is dropped at once: keep the descriptors

#: The MCP listeners' defaults: the backend's timeouts; the cap is half the descriptor
#: limit (less a reserve), leaving the rest to the process's own clients and files.
DEFAULT_LISTENER_LIMITS = Limits(header_timeout_s=10.0, idle_timeout_s=30.0, listeners=2)


@dataclass(slots=True)
class ListenerStats:
    """What the limits did, for /health-style reporting and tests."""

    max_connections: int
    refused: int = 0  # connections answered 503 at the cap
    header_timeouts: int = 0  # connections closed for a request that did not arrive in time
    lingering_refusals: int = 0  # refusals still waiting for their 503 to be read


def _response(status: int, reason: str, text: str) -> bytes:
    body = (text + "\n").encode()
    return (f"HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body


class _LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a request deadline and a connection cap.
    Subclassed per listener by `uvicorn_options` (class attributes carry the limits)."""

    limits: Limits = DEFAULT_LISTENER_LIMITS
    stats: ListenerStats = ListenerStats(max_connections=1)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._request_bytes = 0
        self._refused = False
        self._lingering: asyncio.TimerHandle | None = None
        self._discarded = 0

    # --- cap ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.stats.max_connections:
            self._refused = True
            self.transport = transport
            self.stats.refused += 1
            if self.stats.lingering_refusals >= _MAX_LINGERING_REFUSALS:
                transport.abort()
                return
            self.stats.lingering_refusals += 1
            transport.write(_response(503, "Service Unavailable",
                                      f"too many open connections (limit "
                                      f"{self.stats.max_connections}); retry later"))
            self._linger(_REFUSAL_LINGER_S)
            return
        super().connection_made(transport)
        self._arm()  # the first request must arrive within the header timeout

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._lingering is not None:
            self._lingering.cancel()
            self._lingering = None
            if self._refused:
                self.stats.lingering_refusals -= 1
        if not self._refused:
            super().connection_lost(exc)

    def _linger(self, seconds: float) -> None:
        """Half-close now and close for good after `seconds` (or when the client does)."""
        with contextlib.suppress(OSError, RuntimeError):
            if self.transport.can_write_eof():
                self.transport.write_eof()
        self._lingering = self.loop.call_later(seconds, self.transport.abort)

    # --- request deadline ----------------------------------------------------------------

    def _between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:  # after an error response: discard, up to a point
            self._discarded += len(data)
            if self._discarded > _LINGER_MAX_BYTES:
                self.transport.abort()
            return
        if self._deadline is None and self._between_requests():
            self._arm()  # the first byte of a new request on a kept-alive connection
        self._request_bytes += len(data)
        super().data_received(data)
        if self.conn.their_state not in (h11.IDLE, h11.SEND_BODY):
            self._disarm()  # the request is in (or the connection is done): no deadline

    def _arm(self) -> None:
        self._disarm()
        self._request_bytes = 0
        self._deadline = self.loop.call_later(self.limits.header_timeout_s, self._too_late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_late(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        self.stats.header_timeouts += 1
        if self._request_bytes and self._between_requests():
            # a half-sent head: say why (the app never saw it, so nothing else answers)
            self.transport.write(_response(
                408, "Request Timeout",
                f"request not received within {self.limits.header_timeout_s:g} s"))
            self._linger(_LINGER_S)
            return
        # silent connection (closed quietly), or a body that never finished (the app
        # sees the client disconnect)
        self.transport.close()


def uvicorn_options(limits: Limits | None = None) -> tuple[dict[str, Any], ListenerStats]:
    """`uvicorn.Config` keyword arguments that enforce `limits`, and the listener's stats."""
    limits = limits if limits is not None else DEFAULT_LISTENER_LIMITS
    stats = ListenerStats(max_connections=limits.connection_cap())
    protocol = type("LimitedH11Protocol", (_LimitedH11Protocol,),
                    {"limits": limits, "stats": stats})
    return {"http": protocol, "timeout_keep_alive": limits.idle_timeout_s}, stats
