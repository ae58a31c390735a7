"""The proxy's MCP endpoint: a small ASGI app in front of the upstream link.

Each request to ``/mcp`` is checked (Host and Origin, body size), then handed to
the upstream link (`HttpLink` forwards it as it came, `StdioLink` relays the
message). A ``tools/call`` goes through the `FaultInjector` first; nothing else is
touched. The reply streams back as the upstream sends it. When the client goes
away mid-call the call is cancelled (the row says ``cancelled``) and the upstream
exchange is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from cblab.backend.guard import HostGuard

from .exchange import Inbound, Reply, json_reply
from .health import UpstreamHealth
from .inject import FaultInjector
from .messages import error_message, parse_message, tool_name

__all__ = ["MAX_REQUEST_BYTES", "Gateway", "ProxyHostGuard"]

MAX_REQUEST_BYTES = 8 * 1024 * 1024
MCP_PATHS = ("/mcp", "/mcp/")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Link(Protocol):
    health: UpstreamHealth

    async def exchange(self, inbound: Inbound) -> Reply: ...


class ProxyHostGuard(HostGuard):
    """The backend's Host/Origin rules, with messages naming `cblab proxy`'s own flags."""

    def refusal(self, headers: dict[str, str]) -> tuple[int, str] | None:
        refused = super().refusal(headers)
        if refused is None:
            return None
        status = refused[0]
        if status == 421:
            return 421, (f"Host {headers.get('host', '')[:100]!r} is not allowed: the proxy "
                         "answers loopback names only (cblab proxy --allow-host NAME adds one)")
        return 403, (f"Origin {headers.get('origin', '')[:100]!r} is not allowed: cross-site "
                     "requests are refused (cblab proxy --allow-origin ORIGIN adds one)")


class Gateway:
    """ASGI app: ``/mcp`` to the upstream `link`, tool calls through `injector`."""

    def __init__(self, link: Link, injector: FaultInjector, guard: HostGuard,
                 on_tools: Callable[[list[str], bool], None] | None = None) -> None:
        self.link = link
        self.injector = injector
        self.guard = guard
        self.on_tools = on_tools

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        if scope["path"] not in MCP_PATHS:
            await _send(send, json_reply({"error": f"not found: {scope['path'][:100]}; "
                                                   "the MCP endpoint is /mcp"}, 404))
            return
        named = {k.decode("latin-1"): v.decode("latin-1") for k, v in headers
                 if k in (b"host", b"origin")}
        refused = self.guard.refusal(named)
        if refused is not None:
            await _send(send, json_reply(error_message(None, -32600, refused[1]), refused[0]))
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > MAX_REQUEST_BYTES:
                await _send(send, json_reply(error_message(
                    None, -32600, f"request body over {MAX_REQUEST_BYTES} bytes"), 413))
                return
        inbound = Inbound(scope["method"], headers, bytes(body))
        if inbound.method == "POST":
            inbound.message = parse_message(inbound.body)
        await self._serve(inbound, receive, send)

    async def _serve(self, inbound: Inbound, receive: Receive, send: Send) -> None:
        """Serve `inbound`; cancelled if the client disconnects before the reply is sent."""
        sent = Sent(send)
        task = asyncio.ensure_future(self._route(inbound, sent))
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait([task, gone], return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and not sent.complete:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        finally:
            gone.cancel()
            if not task.done():
                task.cancel()

    async def _route(self, inbound: Inbound, sent: Sent) -> None:
        message = inbound.message
        tool = tool_name(message)
        if tool is not None:
            inbound.watch = True
            await self.injector.call(tool, inbound, self.link.exchange, sent)
            return
        listing = isinstance(message, dict) and message.get("method") == "tools/list" \
            and "id" in message
        inbound.watch = listing
        reply = await self.link.exchange(inbound)
        try:
            await sent(reply)
        finally:
            await reply.aclose()
        if listing and self.on_tools is not None:
            self._learn_tools(message, reply.answer)

    def _learn_tools(self, request: Any, answer: Any) -> None:
        """The tool names faults may target, from a listing that passed through."""
        result = answer.get("result") if isinstance(answer, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return
        names = [t["name"] for t in result["tools"]
                 if isinstance(t, dict) and isinstance(t.get("name"), str)]
        params = request.get("params") if isinstance(request, dict) else None
        whole = not (isinstance(params, dict) and params.get("cursor")) and not result.get("nextCursor")
        assert self.on_tools is not None
        self.on_tools(names, whole)


class Sent:
    """Sends a `Reply` to the client; `complete` once its last byte went out."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.complete = False

    async def __call__(self, reply: Reply) -> None:
        await self._send({"type": "http.response.start", "status": reply.status,
                          "headers": reply.headers})
        async for chunk in reply.body:
            if chunk:
                await self._send({"type": "http.response.body", "body": chunk, "more_body": True})
        self.complete = True
        await self._send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send(send: Send, reply: Reply) -> None:
    await Sent(send)(reply)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
