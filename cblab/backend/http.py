"""A minimal HTTP/1.1 server on asyncio streams.

Just enough HTTP for a loopback test backend, with raw control of the transport
(faults need to hang, reset and refuse): request line and headers, Content-Length
bodies (no chunked uploads), keep-alive, `Connection: close`, HTTP/1.0 clients.
Malformed requests get a 400 and the connection is closed; nothing raises out.

The server tracks its connections so it can stop listening (connection refused),
abort every open connection, and re-bind the same port later.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import socket
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

__all__ = [
    "Connection",
    "HttpError",
    "HttpServer",
    "Request",
    "Response",
    "json_response",
]

log = logging.getLogger("cblab.backend")

MAX_HEADER_BYTES = 16 * 1024
MAX_BODY_BYTES = 64 * 1024

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_METHOD = re.compile(rb"^[A-Z]{1,16}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_LINGER_ZERO = struct.pack("ii", 1, 0)
_LINGER_S = 1.0
_LINGER_MAX_BYTES = 1 << 20


class HttpError(Exception):
    """A request the server refuses to process; answered with `status`, then close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(slots=True)
class Request:
    method: str
    path: str  # raw path, query removed; not percent-decoded
    query: str
    version: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    keep_alive: bool

    def json(self) -> Any:
        """The body parsed as JSON (raises HttpError 400 on invalid JSON)."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"invalid JSON body: {exc}") from None


@dataclass(slots=True)
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"
    close: bool = False

    def encode(self, keep_alive: bool) -> bytes:
        reason = _REASONS.get(self.status, "Unknown")
        lines = [
            f"HTTP/1.1 {self.status} {reason}",
            f"Content-Type: {self.content_type}",
            f"Content-Length: {len(self.body)}",
        ]
        lines += [f"{name}: {value}" for name, value in self.headers]
        if not keep_alive:
            lines.append("Connection: close")
        head = "\r\n".join(lines).encode("latin-1")
        return head + b"\r\n\r\n" + self.body


def json_response(
    status: int, payload: Any, headers: list[tuple[str, str]] | None = None, close: bool = False
) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, headers or [], close=close)


def _error_response(status: int, message: str) -> Response:
    return json_response(status, {"error": message}, close=True)


class Connection:
    """One client connection; handlers use it for hang and reset faults."""

    __slots__ = ("reader", "writer", "task", "aborted")

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        task: asyncio.Task[Any] | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.task = task
        self.aborted = False

    def reset(self) -> None:
        """Drop the connection with a TCP RST (SO_LINGER 0), discarding unsent data."""
        if self.aborted:
            return
        self.aborted = True
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ZERO)
        self.writer.transport.abort()

    async def wait_peer_closed(self) -> None:
        """Return when the client closes its side (its further bytes are discarded:
        nothing after a request that is never answered can be answered either)."""
        with contextlib.suppress(ConnectionError):
            while await self.reader.read(65536):
                pass


async def _lingering_close(conn: Connection) -> None:
    """Half-close, then discard what the client is still sending (an unread
    body, say) for a moment: closing with unread data would reset the
    connection and the client could lose the error response."""
    with contextlib.suppress(OSError, RuntimeError):
        conn.writer.write_eof()
    discarded = 0
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(_LINGER_S):
            while discarded < _LINGER_MAX_BYTES and (chunk := await conn.reader.read(65536)):
                discarded += len(chunk)


Handler = Callable[[Request, Connection], Awaitable[Response | None]]


async def read_request(reader: asyncio.StreamReader, max_body_bytes: int) -> Request | None:
    """Read one request; None on a clean end of stream between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None

    lines = head.lstrip(b"\r\n").split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _METHOD.match(parts[0]):
        raise HttpError(400, "malformed request line")
    method, target, version = parts
    if version not in (b"HTTP/1.1", b"HTTP/1.0"):
        raise HttpError(505 if version.startswith(b"HTTP/") else 400, "unsupported HTTP version")
    if not target.startswith(b"/"):
        raise HttpError(400, "request target must be an absolute path")
    try:
        target_text = target.decode("ascii")
    except UnicodeDecodeError:
        raise HttpError(400, "request target must be ASCII") from None
    if any(c <= " " or c == "\x7f" for c in target_text):
        raise HttpError(400, "invalid character in request target")

    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep or not _HEADER_NAME.match(name):
            raise HttpError(400, "malformed header line")
        name = name.lower()
        value = value.strip(" \t")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value

    http10 = version == b"HTTP/1.0"
    if not http10 and "host" not in headers:
        raise HttpError(400, "missing Host header")
    if "transfer-encoding" in headers:
        raise HttpError(501, "Transfer-Encoding is not supported; send Content-Length")
    length = 0
    if "content-length" in headers:
        values = {v.strip() for v in headers["content-length"].split(",")}
        if len(values) != 1 or not (value := values.pop()).isdigit() or not value.isascii():
            raise HttpError(400, "invalid Content-Length")
        length = int(value) if len(value) <= 20 else max_body_bytes + 1
        if length > max_body_bytes:
            raise HttpError(413, f"request body larger than {max_body_bytes} bytes")
    body = b""
    if length:
        try:
            body = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            raise HttpError(400, "incomplete request body") from None

    connection = headers.get("connection", "").lower()
    keep_alive = "keep-alive" in connection if http10 else "close" not in connection
    path, _, query = target_text.partition("?")
    return Request(method.decode(), path, query, version.decode(), headers, body, keep_alive)


class HttpServer:
    """Serve `handler` on one TCP port; can stop listening and re-bind later.

    The handler returns a Response to send, or None when it has already dealt
    with the connection itself (reset it, for instance).
    """

    def __init__(
        self,
        handler: Handler,
        *,
        max_body_bytes: int = MAX_BODY_BYTES,
        on_bad_request: Callable[[int], None] | None = None,
    ) -> None:
        self._handler = handler
        self._max_body_bytes = max_body_bytes
        self._on_bad_request = on_bad_request
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self.host: str | None = None
        self.port: int | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    async def listen(self, host: str, port: int) -> int:
        """Bind and listen; returns the port (the ephemeral one when `port` is 0)."""
        if self._server is not None:
            return self.port  # type: ignore[return-value]
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=MAX_HEADER_BYTES, reuse_address=True
        )
        self.host = host
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def close_listener(self) -> None:
        """Stop accepting: new connections are refused by the kernel."""
        if self._server is not None:
            self._server.close()
            self._server = None

    async def abort_connections(self) -> None:
        """Reset every open connection, cancel its handler and wait until both are
        gone (asyncio closes an aborted socket on the next loop iteration only)."""
        tasks = []
        for conn in list(self._connections):
            conn.reset()
            if conn.task is not None and conn.task is not asyncio.current_task():
                conn.task.cancel()
                tasks.append(conn.task)
        if tasks:
            await asyncio.wait(tasks)
        else:
            await asyncio.sleep(0)

    async def stop(self) -> None:
        self.close_listener()
        await self.abort_connections()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Connection(reader, writer, asyncio.current_task())
        self._connections.add(conn)
        try:
            await self._serve_requests(conn)
        except asyncio.CancelledError:
            # aborted by us (down, stop): end quietly; asyncio 3.11 logs a traceback
            # for a cancelled client_connected_cb task
            conn.reset()
        except ConnectionError:
            conn.reset()
        except Exception:  # a handler bug must not kill the server or leak a traceback
            log.exception("unhandled error serving a request")
            if not conn.aborted:
                with contextlib.suppress(Exception):
                    writer.write(_error_response(500, "internal error").encode(False))
            conn.reset()
        finally:
            self._connections.discard(conn)
            if not conn.aborted:
                writer.close()

    async def _serve_requests(self, conn: Connection) -> None:
        writer = conn.writer
        while True:
            try:
                request = await read_request(conn.reader, self._max_body_bytes)
            except HttpError as exc:
                if self._on_bad_request is not None:
                    self._on_bad_request(exc.status)
                writer.write(_error_response(exc.status, exc.message).encode(False))
                await _lingering_close(conn)
                return
            if request is None:
                return
            response = await self._handler(request, conn)
            if response is None or conn.aborted:
                return
            keep_alive = request.keep_alive and not response.close
            writer.write(response.encode(keep_alive))
            if not keep_alive:
                return
            if writer.transport.get_write_buffer_size() > 65536:
                await writer.drain()
