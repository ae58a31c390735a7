"""The minimal HTTP/1.1 server, over raw sockets: framing, keep-alive, bad input."""

from __future__ import annotations

import asyncio
import json

import pytest

from cblab.backend import Backend


async def exchange(port: int, data: bytes, *, timeout: float = 2.0) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(timeout):
            return await reader.read(-1)
    finally:
        writer.close()


def parse_responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    responses = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        responses.append((status, headers, rest[:length]))
        raw = rest[length:]
    return responses


GET = b"GET /users/octocat HTTP/1.1\r\nHost: t\r\n\r\n"
CLOSE = b"GET /users/octocat HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"


async def test_pipelined_requests_are_answered_in_order(backend: Backend) -> None:
    raw = await exchange(
        backend.ports["users"], GET + b"GET /users/nobody-x HTTP/1.1\r\nHost: t\r\n\r\n" + CLOSE
    )
    responses = parse_responses(raw)
    assert [status for status, _, _ in responses] == [200, 404, 200]
    assert responses[-1][1]["connection"] == "close"
    assert "connection" not in responses[0][1]
    assert json.loads(responses[0][2])["login"] == "octocat"


async def test_http10_closes_by_default(backend: Backend) -> None:
    raw = await exchange(backend.ports["users"], b"GET /users/octocat HTTP/1.0\r\n\r\n")
    [(status, headers, _)] = parse_responses(raw)
    assert status == 200 and headers["connection"] == "close"


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /users/octocat\r\nHost: t\r\n\r\n", 400),
        (b"get /users/octocat HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET users HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET http://x/users/octocat HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"GET /users/octocat HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (b"GET /users/octocat HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET /users/octocat HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
        (b"GET /users/octocat HTTP/1.1\r\nHost: t\r\nno-colon\r\n\r\n", 400),
        (b"GET /users/\xff HTTP/1.1\r\nHost: t\r\n\r\n", 400),
        (b"PUT /users/octocat HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400),
        (b"PUT /users/octocat HTTP/1.1\r\nHost: t\r\nContent-Length: 1, 2\r\n\r\nab", 400),
        (b"PUT /users/octocat HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n", 413),
        (b"PUT /x HTTP/1.1\r\nHost: t\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n", 413),
        (b"PUT /x HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
        (b"GET /x HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 20_000 + b"\r\n\r\n", 431),
    ],
)
async def test_malformed_requests_get_an_error_and_close(
    backend: Backend, request_bytes: bytes, status: int
) -> None:
    raw = await exchange(backend.ports["users"], request_bytes)
    [(got, headers, body)] = parse_responses(raw)
    assert got == status
    assert headers["connection"] == "close"
    assert "error" in json.loads(body)
    assert backend.stats()["users"]["answered"]["client_error"] == 1


async def test_truncated_request_is_dropped_quietly(backend: Backend) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.write(b"GET /users/octocat HTTP/1.1\r\nHo")
    writer.write_eof()
    async with asyncio.timeout(2):
        raw = await reader.read(-1)
    writer.close()
    assert parse_responses(raw)[0][0] == 400


async def test_idle_client_closing_is_not_an_error(backend: Backend) -> None:
    _, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.close()
    await writer.wait_closed()
    raw = await exchange(backend.ports["users"], CLOSE)
    assert parse_responses(raw)[0][0] == 200
    assert backend.stats()["users"]["received"] == 1


async def test_request_body_is_read_with_content_length(backend: Backend) -> None:
    body = json.dumps({"error_rate": 0.25}).encode()
    request = (
        b"PATCH /faults/users HTTP/1.1\r\nHost: localhost\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    raw = await exchange(
        backend.ports["control"],
        request + CLOSE.replace(b"/users/octocat", b"/faults/users").replace(b"Host: t", b"Host: localhost"),
    )
    responses = parse_responses(raw)
    assert [status for status, _, _ in responses] == [200, 200]
    assert json.loads(responses[1][2])["error_rate"] == 0.25
