"""A minimal HTTP/1.1 server on asyncio streams.

Just enough HTTP for a loopback test backend, with raw control of the transport
(faults need to hang, reset and refuse): request line and headers, Content-Length
bodies (no chunked uploads), keep-alive, `Connection: close`, HTTP/1.0 clients.
Malformed requests get a 400 and the connection is closed; nothing raises out.
Request heads may end their lines with CRLF or a bare LF (RFC 9112 section 2.2).

Limits (`Limits`), so that idle or malicious clients cannot hold the process:

- a new connection must deliver a complete request head and body within
  `header_timeout_s` of being accepted; a kept-alive connection may sit idle for
  `idle_timeout_s`, after which its next request must again arrive complete
  within `header_timeout_s` of its first byte. A silent connection is closed
  quietly, a half-sent request gets a 408 (so slowloris ends with the timeout);
- at most `max_connections` open connections per listener: the next one is
  answered 503 at once and closed;
- running out of file descriptors logs one line (not a traceback per accept).

The server tracks its connections so it can stop listening (connection refused),
abort every open connection, and re-bind the same port later.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import math
import re
import resource
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from cblab.strict_json import loads_json

__all__ = [
    "Connection",
    "HttpError",
    "HttpServer",
    "Limits",
    "Request",
    "Response",
    "json_response",
]

log = logging.getLogger("cblab.backend")

MAX_HEADER_BYTES = 16 * 1024
MAX_HEADER_LINES = 100
MAX_BODY_BYTES = 64 * 1024
# descriptors kept free for the process itself (listeners, SQLite, logs, imports)
FD_RESERVE = 64

_REASONS = {status.value: status.phrase for status in HTTPStatus}
_METHOD = re.compile(rb"^[A-Z]{1,16}$")
_HEADER_NAME = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_LINGER_ZERO = struct.pack("ii", 1, 0)
_LINGER_S = 1.0
_LINGER_MAX_BYTES = 1 << 20
_MAX_LINGERING_REFUSALS = 4  # per listener; within FD_RESERVE


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
        """The body parsed as JSON (HttpError 400 on invalid or abusive JSON, see
        `loads_json`)."""
        try:
            return loads_json(self.body)
        except ValueError as exc:
            raise HttpError(400, f"invalid JSON body: {exc}") from None


def _finite(value: Any) -> Any:
    """`value` with every non-finite float replaced by None (JSON has no Infinity)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


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
    try:
        text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    except ValueError:  # an inf/nan slipped through validation: still answer valid JSON
        log.warning("non-finite number in a JSON answer replaced by null")
        text = json.dumps(_finite(payload), separators=(",", ":"), allow_nan=False)
    return Response(status, text.encode(), headers or [], close=close)


def _error_response(status: int, message: str) -> Response:
    return json_response(status, {"error": message}, close=True)


_HEAD_END = re.compile(rb"\n\r?\n")


class _Reader(asyncio.StreamReader):
    """A StreamReader that finds a request head's end in one scan of its buffer
    (CRLF or bare-LF lines) and tells a waiting request when the peer has gone.

    It extends asyncio's StreamReader with the same private fields its own read
    methods use (`_buffer`, `_eof`, `_exception`, `_wait_for_data`), unchanged
    since Python 3.8: reading a head line by line costs four times as much.
    """

    if TYPE_CHECKING:  # StreamReader's private fields, untyped in typeshed
        _buffer: bytearray
        _eof: bool
        _exception: BaseException | None

        async def _wait_for_data(self, func_name: str) -> None: ...
        def _maybe_resume_transport(self) -> None: ...

    def __init__(self, limit: int) -> None:
        super().__init__(limit=limit)
        self.gone = False
        self.on_gone: Callable[[], None] | None = None

    def feed_eof(self) -> None:
        super().feed_eof()
        self._peer_left()

    def set_exception(self, exc: Exception) -> None:
        super().set_exception(exc)
        self._peer_left()

    def _peer_left(self) -> None:
        self.gone = True
        if self.on_gone is not None:
            self.on_gone()

    async def wait_readable(self) -> None:
        """Return once there are bytes to read or the stream has ended."""
        if not self._buffer and not self._eof and self._exception is None:
            await self._wait_for_data("wait_readable")

    async def read_head(self, limit: int) -> bytes:
        """The bytes up to and including the empty line ending a request head;
        blank lines before it are skipped. IncompleteReadError at EOF (partial:
        what there was), LimitOverrunError past `limit` bytes."""
        buffer = self._buffer
        offset = 0
        while True:
            if self._exception is not None:
                raise self._exception
            start = 0
            while start < len(buffer) and buffer[start] in b"\r\n":
                start += 1
            if start:  # blank lines before the request line (RFC 9112 2.2)
                del buffer[:start]
                offset = 0
            match = _HEAD_END.search(buffer, offset)
            if match is not None:
                end = match.end()
                if end > limit:
                    raise asyncio.LimitOverrunError("request head too large", end)
                head = bytes(buffer[:end])
                del buffer[:end]
                self._maybe_resume_transport()
                return head
            if len(buffer) > limit:
                raise asyncio.LimitOverrunError("request head too large", len(buffer))
            if self._eof:
                partial = bytes(buffer)
                buffer.clear()
                raise asyncio.IncompleteReadError(partial, None)
            offset = max(0, len(buffer) - 2)
            await self._wait_for_data("read_head")


class Connection:
    """One client connection; handlers use it for hang and reset faults."""

    __slots__ = ("reader", "writer", "task", "aborted", "deadline", "timed_out")

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
        # while a request is being read: when the server's sweep cancels the read
        self.deadline: float | None = None
        self.timed_out = False

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

    async def unless_peer_gone(self, awaitable: Awaitable[Any]) -> bool:
        """Await `awaitable` in this task unless the client closes its side first;
        then cancel it and return False. Bytes the client sent meanwhile stay unread.
        (Like `asyncio.timeout`: the peer leaving cancels the task, and that one
        cancellation is taken back.)"""
        reader = self.reader
        if not isinstance(reader, _Reader):  # a plain StreamReader: no way to watch
            await awaitable
            return True
        if reader.gone:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()
            return False
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def cancel() -> None:
            nonlocal fired
            if not fired:
                fired = True
                task.cancel()

        reader.on_gone = cancel
        try:
            await awaitable
        except asyncio.CancelledError:
            if fired and task.uncancel() == 0:
                return False
            raise
        finally:
            reader.on_gone = None
        return True


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


async def read_request(reader: _Reader, max_body_bytes: int) -> Request | None:
    """Read one request; None on a clean end of stream between requests."""
    try:
        head = await reader.read_head(MAX_HEADER_BYTES)
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise HttpError(400, "incomplete request head") from None
        return None
    except asyncio.LimitOverrunError:
        raise HttpError(431, "request head too large") from None
    crlf = head.count(b"\r\n")
    if crlf == head.count(b"\n") == head.count(b"\r"):  # every line CRLF: split in C
        lines = head[:-4].split(b"\r\n")
    else:  # bare LF line ends (allowed), maybe mixed with CRLF; a bare CR is not
        lines = head.split(b"\n")[:-2]  # the head ends with two line ends
        for i, line in enumerate(lines):
            if line.endswith(b"\r"):
                lines[i] = line = line[:-1]
            if b"\r" in line:
                raise HttpError(400, "bare CR in request head")
    if len(lines) > MAX_HEADER_LINES:
        raise HttpError(431, f"more than {MAX_HEADER_LINES - 1} header lines")
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


def descriptor_limit() -> int:
    """The process's soft limit on open file descriptors."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


@dataclass(frozen=True, slots=True)
class Limits:
    """Connection limits of one listener (see the module docstring).

    `max_connections` None: derived from the descriptor limit at listen time,
    `(soft limit - FD_RESERVE) // listeners`, at least 8.
    """

    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    max_connections: int | None = None
    listeners: int = 1

    def __post_init__(self) -> None:
        for name in ("header_timeout_s", "idle_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and 0 < value <= 3600):
                raise ValueError(f"{name} must be a number of seconds in (0, 3600], got {value!r}")
        if self.max_connections is not None and not (
            isinstance(self.max_connections, int) and self.max_connections >= 1
        ):
            raise ValueError(f"max_connections must be an integer >= 1, got {self.max_connections!r}")
        if not (isinstance(self.listeners, int) and self.listeners >= 1):
            raise ValueError(f"listeners must be an integer >= 1, got {self.listeners!r}")

    def connection_cap(self) -> int:
        if self.max_connections is not None:
            return self.max_connections
        return max(8, (descriptor_limit() - FD_RESERVE) // self.listeners)


class _DescriptorWarning:
    """Asyncio reports each failed accept (EMFILE) with a traceback; log one line
    per minute instead, with how many were refused meanwhile."""

    interval_s = 60.0

    def __init__(self) -> None:
        self._last = -math.inf
        self._count = 0

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> bool:
        exc = context.get("exception")
        if not (isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE)):
            return False
        self._count += 1
        now = time.monotonic()
        if now - self._last >= self.interval_s:
            log.error(
                "out of file descriptors (%s): new connections wait in the kernel's queue; "
                "%d failed accept(s) since the last report; raise the limit (ulimit -n %d) "
                "or lower max_connections",
                errno.errorcode.get(exc.errno, exc.errno), self._count, descriptor_limit(),
            )
            self._last, self._count = now, 0
        return True


_descriptor_warning = _DescriptorWarning()


def _install_descriptor_warning(loop: asyncio.AbstractEventLoop) -> None:
    """Filter EMFILE accept errors out of `loop`'s exception handler (once per loop)."""
    previous = loop.get_exception_handler()
    if getattr(previous, "_cblab_descriptors", False):
        return

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if _descriptor_warning(loop, context):
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler._cblab_descriptors = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)


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
        limits: Limits | None = None,
    ) -> None:
        self._handler = handler
        self._max_body_bytes = max_body_bytes
        self._on_bad_request = on_bad_request
        self.limits = limits if limits is not None else Limits()
        self.max_connections = self.limits.connection_cap()
        self.refused_connections = 0
        self._server: asyncio.Server | None = None
        self._connections: set[Connection] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._refusing = 0
        # how often read deadlines are checked: a timeout fires up to one tick late
        self._tick = min(max(min(self.limits.header_timeout_s, self.limits.idle_timeout_s) / 4,
                             0.05), 1.0)
        self.host: str | None = None
        self.port: int | None = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def listen(self, host: str, port: int) -> int:
        """Bind and listen; returns the port (the ephemeral one when `port` is 0)."""
        if self._server is not None:
            return self.port  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        _install_descriptor_warning(loop)

        def protocol() -> asyncio.StreamReaderProtocol:
            # what asyncio.start_server does, with a reader that reports the peer leaving
            return asyncio.StreamReaderProtocol(_Reader(MAX_HEADER_BYTES), self._accepted)

        self._server = await loop.create_server(protocol, host, port, reuse_address=True)
        if self._sweeper is None:
            self._sweeper = loop.call_later(self._tick, self._sweep)
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
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        await self.abort_connections()

    def _sweep(self) -> None:
        """Cancel the reads that are past their deadline. One timer per listener
        instead of one per request: a timer per request costs more than parsing it."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        for conn in self._connections:
            if conn.deadline is not None and now >= conn.deadline and conn.task is not None:
                conn.deadline = None
                conn.timed_out = True
                conn.task.cancel()
        self._sweeper = loop.call_later(self._tick, self._sweep)

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._connections) >= self.max_connections:
            await self._refuse(Connection(reader, writer, asyncio.current_task()))
            return
        await self._serve(reader, writer)

    async def _refuse(self, conn: Connection) -> None:
        """Over the connection cap: a 503 right away, then close (the client's
        request, if any, is left unread)."""
        self.refused_connections += 1
        if self.refused_connections == 1 or self.refused_connections % 1000 == 0:
            log.warning(
                "%s:%s at its cap of %d open connections: refusing new ones (%d so far)",
                self.host, self.port, self.max_connections, self.refused_connections,
            )
        if self._refusing >= _MAX_LINGERING_REFUSALS:  # a flood: drop at once, keep the fds
            conn.writer.transport.abort()
            return
        response = _error_response(
            503, f"too many open connections (limit {self.max_connections}); retry later"
        )
        response.headers.append(("Retry-After", "1"))
        self._refusing += 1
        try:
            conn.writer.write(response.encode(False))
            async with asyncio.timeout(0.25):  # a short linger: the 503 should arrive
                await _lingering_close(conn)
        except (Exception, asyncio.CancelledError):
            pass  # shutting down, or the client is gone: nothing more to say
        finally:
            self._refusing -= 1
            conn.writer.transport.abort()

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

    async def _next_request(self, conn: Connection, first: bool) -> Request | None:
        """The next request, or None when the client closed or stayed silent too long.

        The wait for its first byte is bounded (header timeout on a new connection,
        idle timeout between requests), then the whole head and body must arrive
        within the header timeout (HttpError 408 otherwise). `_sweep` enforces
        the deadlines by cancelling this read."""
        limits = self.limits
        reader = conn.reader
        assert isinstance(reader, _Reader)
        loop = asyncio.get_running_loop()
        arrived = False
        conn.deadline = loop.time() + (limits.header_timeout_s if first else limits.idle_timeout_s)
        try:
            await reader.wait_readable()
            arrived = True
            conn.deadline = loop.time() + limits.header_timeout_s
            return await read_request(reader, self._max_body_bytes)
        except asyncio.CancelledError:
            task = conn.task
            if not conn.timed_out or task is None or task.uncancel() > 0:
                raise  # cancelled by someone else too (stop, down)
            conn.timed_out = False
            if not arrived:
                return None
            raise HttpError(
                408, f"request not received within {limits.header_timeout_s:g} s"
            ) from None
        finally:
            conn.deadline = None

    async def _serve_requests(self, conn: Connection) -> None:
        writer = conn.writer
        first = True
        while True:
            try:
                request = await self._next_request(conn, first)
            except HttpError as exc:
                if self._on_bad_request is not None:
                    self._on_bad_request(exc.status)
                writer.write(_error_response(exc.status, exc.message).encode(False))
                await _lingering_close(conn)
                return
            if request is None:
                return
            first = False
            response = await self._handler(request, conn)
            if response is None or conn.aborted:
                return
            keep_alive = request.keep_alive and not response.close
            writer.write(response.encode(keep_alive))
            if not keep_alive:
                return
            if writer.transport.get_write_buffer_size() > 65536:
                try:  # a client that does not read its answers is idle too
                    async with asyncio.timeout(self.limits.idle_timeout_s):
                        await writer.drain()
                except TimeoutError:
                    conn.reset()
                    return
