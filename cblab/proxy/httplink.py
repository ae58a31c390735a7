"""A Streamable HTTP upstream, forwarded at the transport level.

Each request the client sends is sent on to the upstream as it came (body bytes,
MCP headers, session id) and the upstream's answer streams back unchanged: the
proxy adds nothing to listings, schemas or results, and a session, a task or a
protocol version it does not know passes through. Nothing is held between
requests but pooled connections, so an upstream that was killed and restarted on
the same port simply answers the next request (a sessionful upstream forgets its
sessions when it restarts: its clients get its 404 and start a new one, as they
would without the proxy).

Not forwarded: hop-by-hop headers, ``Host`` and ``Origin`` (the proxy checked them;
the upstream sees the proxy as its client), an ``Authorization`` header that is the
proxy's own control token, and ``Accept-Encoding`` (answers come uncompressed, so
the proxy can look into them).

The proxy looks into an answer only when it must: a ``tools/call``'s (its outcome
goes into the rows; over `max_result_bytes` it is replaced by a JSON-RPC error) and a
``tools/list``'s (the tool names faults may target).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from .exchange import Headers, Inbound, Reply, down_reply, one_chunk, too_large_reply
from .health import CONNECTED, DOWN, UpstreamHealth
from .messages import UPSTREAM_DOWN, SseSplitter, parse_message, sse_event
from .upstream import error_reason
from .wire import HttpPool, UpstreamResponse

#: what a broken upstream connection raises (refused, reset, timed out connecting)
_BROKEN = (OSError, TimeoutError, asyncio.IncompleteReadError)

__all__ = ["HttpLink"]

log = logging.getLogger("cblab.proxy")

_DROP_REQUEST = frozenset({
    b"host", b"origin", b"connection", b"keep-alive", b"transfer-encoding", b"content-length",
    b"accept-encoding", b"te", b"upgrade", b"proxy-authorization", b"proxy-connection",
})
_DROP_RESPONSE = frozenset({
    b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"server", b"date",
})


class HttpLink:
    """Forwards exchanges to one Streamable HTTP URL; tracks whether it answers."""

    kind = "http"

    def __init__(self, url: str, health: UpstreamHealth, *, max_result_bytes: int,
                 control_token: str | None = None) -> None:
        self.url = url
        self.health = health
        self.max_result_bytes = max_result_bytes
        self._drop_auth = f"Bearer {control_token}".encode() if control_token else None
        parts = urlsplit(url)
        self._address = (parts.hostname or "127.0.0.1",
                         parts.port or (443 if parts.scheme == "https" else 80))
        self._pool: HttpPool | None = None
        self._probe: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # no read timeout: a call lasts as long as its client waits (the client's deadline)
        self._pool = HttpPool(self.url)

    async def stop(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.aclose()

    # --- the upstream's state -------------------------------------------------------

    def _went_down(self, reason: str) -> None:
        if self.health.connected:
            log.warning("upstream %s is down: %s", self.url, reason)
        self.health.set(DOWN, reason)
        if self._probe is None or self._probe.done():
            self._probe = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Until the upstream accepts connections again (so /health says so without a call)."""
        delay = 0.05
        while not self.health.connected:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(*self._address), 5)
            except (OSError, TimeoutError):
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self.health.set(CONNECTED)
            log.warning("upstream %s is back", self.url)

    # --- forwarding ----------------------------------------------------------------

    def _headers(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        out = [(k, v) for k, v in headers if k not in _DROP_REQUEST
               and not (k == b"authorization" and v == self._drop_auth)]
        out.append((b"accept-encoding", b"identity"))
        return out

    async def exchange(self, inbound: Inbound) -> Reply:
        assert self._pool is not None
        try:
            response = await self._pool.request(
                inbound.method, self._headers(inbound.headers),
                inbound.body if inbound.method == "POST" else b"")
        except _BROKEN as exc:
            reason = error_reason(exc)
            self._went_down(reason)
            return down_reply(inbound.request_id, self.health.state, reason)
        if not self.health.connected:
            self.health.set(CONNECTED)
        headers = [(k, v) for k, v in response.headers if k not in _DROP_RESPONSE]
        if not inbound.watch:
            return Reply(response.status, headers, self._raw(response), close=response.aclose)
        if (response.header(b"content-type") or b"").startswith(b"text/event-stream"):
            reply = Reply(response.status, headers, one_chunk(b""), close=response.aclose)
            reply.body = self._events(response, inbound, reply)
            return reply
        return await self._whole(response, inbound, headers)

    async def _raw(self, response: UpstreamResponse) -> AsyncIterator[bytes]:
        try:
            async for chunk in response.body():
                yield chunk
        except _BROKEN as exc:  # killed mid-answer (say, the GET stream): end it here too
            log.warning("upstream %s broke the answer off: %s", self.url, error_reason(exc))
        finally:
            await response.aclose()

    async def _whole(self, response: UpstreamResponse, inbound: Inbound,
                     headers: Headers) -> Reply:
        """A JSON answer, read whole (bounded) and looked into."""
        body = bytearray()
        try:
            async for chunk in response.body():
                body += chunk
                if len(body) > self.max_result_bytes:
                    return too_large_reply(inbound.request_id, self.max_result_bytes)
        except _BROKEN as exc:
            reason = error_reason(exc)
            self._went_down(reason)
            return down_reply(inbound.request_id, self.health.state, reason)
        finally:
            await response.aclose()
        data = bytes(body)
        headers.append((b"content-length", str(len(data)).encode()))
        reply = Reply(response.status, headers, one_chunk(data))
        reply.answer = parse_message(data)
        return reply

    async def _events(self, response: UpstreamResponse, inbound: Inbound,
                      reply: Reply) -> AsyncIterator[bytes]:
        """An SSE answer, event by event (each bounded); the one answering the request
        is kept in `reply.answer`."""
        splitter = SseSplitter(self.max_result_bytes)
        wanted = inbound.request_id
        try:
            async for chunk in response.body():
                try:
                    events = splitter.feed(chunk)
                except OverflowError:
                    too_large = too_large_reply(wanted, self.max_result_bytes)
                    reply.answer, reply.error_type = too_large.answer, too_large.error_type
                    yield sse_event(too_large.answer)
                    return
                for event in events:
                    data = SseSplitter.data(event) if b'"id"' in event else None
                    if isinstance(data, dict) and data.get("id") == wanted and "method" not in data:
                        reply.answer = data
                    yield event
            rest = splitter.rest()
            if rest:
                yield rest
        except _BROKEN as exc:
            reason = error_reason(exc)
            reply.error_type = UPSTREAM_DOWN
            log.warning("upstream %s broke the answer off: %s", self.url, reason)
        finally:
            await response.aclose()
