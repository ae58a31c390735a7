"""A minimal HTTP/1.1 client for the proxy's upstream: keep-alive connections, bodies
streamed as they arrive (Content-Length, chunked, or until close).

Why not httpx: forwarding is the proxy's whole cost, and httpx + httpcore spend
about 1.5 ms of CPU per request here (on this venv, a failed ``import sniffio`` on
every request alone is ~0.6 ms), more than the MCP server behind it. This client
does only what forwarding needs: one request, its answer's status, headers and body
bytes, untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

__all__ = ["HttpPool", "UpstreamResponse"]

Headers = list[tuple[bytes, bytes]]

_MAX_HEAD = 64 * 1024
_NO_BODY = (204, 304)


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        return not self.reader.at_eof() and not self.writer.is_closing()

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    """Status, headers and the body as it streams; `aclose()` gives the connection back
    to the pool when the body was read to its end (else closes it)."""

    def __init__(self, pool: HttpPool, conn: _Connection, status: int, headers: Headers,
                 method: str) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = status
        self.headers = headers
        self._method = method
        self._done = False
        names = {k.lower(): v for k, v in headers}
        self._keep = names.get(b"connection", b"").lower() != b"close"
        self._chunked = b"chunked" in names.get(b"transfer-encoding", b"").lower()
        length = names.get(b"content-length")
        self._length = int(length) if length is not None and length.strip().isdigit() else None
        if method == "HEAD" or status in _NO_BODY or status < 200:
            self._length = 0
            self._chunked = False

    def header(self, name: bytes) -> bytes | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    async def body(self, chunk_size: int = 1 << 16) -> AsyncIterator[bytes]:
        conn = self._conn
        if conn is None:
            return
        reader = conn.reader
        if self._chunked:
            while True:
                line = await reader.readuntil(b"\r\n")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":
                        pass  # trailers
                    break
                async for part in _exactly(reader, size, chunk_size):
                    yield part
                await reader.readexactly(2)
        elif self._length is not None:
            async for part in _exactly(reader, self._length, chunk_size):
                yield part
        else:
            self._keep = False
            while part := await reader.read(chunk_size):
                yield part
        self._done = True

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._keep and conn.usable():
            self._pool.release(conn)
        else:
            conn.close()


async def _exactly(reader: asyncio.StreamReader, size: int, chunk_size: int) -> AsyncIterator[bytes]:
    """`size` bytes, in pieces as they arrive."""
    while size > 0:
        part = await reader.read(min(size, chunk_size))
        if not part:
            raise ConnectionResetError("the upstream closed the connection mid-answer")
        size -= len(part)
        yield part


class HttpPool:
    """Connections to one origin (``http(s)://host:port``), reused while they last."""

    def __init__(self, url: str, *, connect_timeout: float = 10.0, max_idle: int = 64) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        netloc = parts.netloc.rsplit("@", 1)[-1]
        self.host_header = netloc.encode("idna" if not netloc.isascii() else "ascii")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self.connect_timeout = connect_timeout
        self.max_idle = max_idle
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl, limit=_MAX_HEAD)
        return _Connection(reader, writer)

    def release(self, conn: _Connection) -> None:
        if len(self._idle) < self.max_idle:
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
            with contextlib.suppress(Exception):
                await conn.writer.wait_closed()

    async def request(self, method: str, headers: Headers, body: bytes = b"") -> UpstreamResponse:
        """Send one request; OSError when the upstream cannot be reached. A pooled
        connection the upstream closed meanwhile is retried once on a fresh one."""
        head = [f"{method} {self.path} HTTP/1.1\r\n".encode(), b"host: ", self.host_header, b"\r\n"]
        for name, value in headers:
            head += [name, b": ", value, b"\r\n"]
        if body or method in ("POST", "PUT", "PATCH"):
            head += [b"content-length: ", str(len(body)).encode(), b"\r\n"]
        head.append(b"\r\n")
        payload = b"".join(head) + body
        while self._idle:
            conn = self._idle.pop()
            if not conn.usable():
                conn.close()
                continue
            try:
                return await self._exchange(conn, payload, method)
            except (ConnectionError, asyncio.IncompleteReadError):
                conn.close()  # closed while idle: the request never got an answer
                break
        return await self._exchange(await self._connect(), payload, method)

    async def _exchange(self, conn: _Connection, payload: bytes, method: str) -> UpstreamResponse:
        try:
            conn.writer.write(payload)
            await conn.writer.drain()
            head = await conn.reader.readuntil(b"\r\n\r\n")
            lines = head[:-4].split(b"\r\n")
            status_line = lines[0].split(b" ", 2)
            status = int(status_line[1])
            headers: Headers = []
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.append((name.strip().lower(), value.strip()))
        except asyncio.IncompleteReadError:
            conn.close()
            raise ConnectionResetError("the upstream closed the connection without answering") from None
        except (asyncio.LimitOverrunError, ValueError, IndexError):
            conn.close()
            raise ConnectionResetError("the upstream's answer is not HTTP/1.1") from None
        except BaseException:
            conn.close()
            raise
        return UpstreamResponse(self, conn, status, headers, method)
