"""Issue 15 item 2: idle, half-sent and too many connections cannot hold the backend."""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from cblab.backend import Backend
from cblab.backend.http import Limits
from tests.helpers import eventually_sync

from .probes import eventually, read_until_closed, status_of

GET = b"GET /users/octocat HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    limits = Limits(header_timeout_s=0.5, idle_timeout_s=0.8, max_connections=6, listeners=3)
    async with Backend(seed=1, limits=limits) as started:
        yield started


async def test_half_sent_request_gets_408_within_the_header_timeout(backend: Backend) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.write(b"GET /users/octocat HTTP/1.1\r\nHost: t\r\n")  # no blank line, ever
    started = time.monotonic()
    raw = await read_until_closed(reader, timeout=10)
    writer.close()
    assert status_of(raw) == 408
    assert b"within 0.5 s" in raw
    assert time.monotonic() - started < 5  # today: held until the client gives up


async def test_slowloris_does_not_outlast_the_header_timeout(backend: Backend) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    started = time.monotonic()
    closed = asyncio.ensure_future(read_until_closed(reader, timeout=10))
    try:
        for byte in b"GET /users/octocat HTTP/1.1\r\nX-Slow: " + b"a" * 1000:
            if closed.done():
                break
            writer.write(bytes([byte]))  # one byte every 20 ms: never idle, never done
            await asyncio.sleep(0.02)
        raw = await closed
    finally:
        writer.close()
    assert status_of(raw) == 408
    assert time.monotonic() - started < 5


async def test_silent_connection_is_closed_quietly(backend: Backend) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    assert await read_until_closed(reader, timeout=10) == b""  # closed, no response
    writer.close()


async def test_idle_keep_alive_connection_is_closed(backend: Backend) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.write(GET)
    head = await reader.readuntil(b"\r\n\r\n")
    assert status_of(head) == 200
    length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length"))
                 .split(b":")[1])
    await reader.readexactly(length)
    assert await read_until_closed(reader, timeout=10) == b""  # idle timeout, quietly
    writer.close()


@pytest.mark.parametrize(
    "head",
    [
        b"GET /users/octocat HTTP/1.1\nHost: t\nConnection: close\n\n",
        b"GET /users/octocat HTTP/1.1\r\nHost: t\nConnection: close\r\n\n",
    ],
)
async def test_lf_only_request_heads_are_parsed(backend: Backend, head: bytes) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.write(head)
    raw = await read_until_closed(reader, timeout=5)
    writer.close()
    assert status_of(raw) == 200
    assert b'"login":"octocat"' in raw


async def test_bare_cr_is_refused(backend: Backend) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
    writer.write(b"GET /users/octocat HTTP/1.1\r\nHost: t\rX: y\r\n\r\n")
    raw = await read_until_closed(reader, timeout=5)
    writer.close()
    assert status_of(raw) == 400 and b"bare CR" in raw


async def test_connection_cap_refuses_clearly_and_spares_the_control_api(
    backend: Backend,
) -> None:
    held = [await asyncio.open_connection("127.0.0.1", backend.ports["users"]) for _ in range(6)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", backend.ports["users"])
        writer.write(GET)
        raw = await read_until_closed(reader, timeout=5)
        writer.close()
        assert status_of(raw) == 503
        assert b"too many open connections (limit 6)" in raw
        async with httpx.AsyncClient() as http:
            health = await http.get(backend.urls["control"] + "/health")
            assert health.status_code == 200
            # the held ones time out, then the service answers again
            users = await eventually(
                lambda: _get_ok(http, backend.urls["users"] + "/users/octocat"), timeout=10
            )
            assert users.json()["login"] == "octocat"
    finally:
        for _, w in held:
            w.close()


async def _get_ok(http: httpx.AsyncClient, url: str) -> httpx.Response | None:
    response = await http.get(url)
    return response if response.status_code == 200 else None


# --- the real process with a low descriptor limit ----------------------------------------

NOFILE = 128


def _low_nofile() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))


@pytest.fixture
def start_backend(tmp_path: Path):  # type: ignore[no-untyped-def]
    procs: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
        ready = tmp_path / f"ready-{len(procs)}.json"
        proc = subprocess.Popen(
            [sys.executable, "-m", "cblab.backend", "--ready-file", str(ready),
             "--header-timeout", "1", "--idle-timeout", "1", *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            preexec_fn=_low_nofile,
        )
        procs.append(proc)
        def started() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"backend did not start: {proc.stderr.read() if proc.stderr else ''}")
            return ready.exists()

        eventually_sync(started, 30, "the backend's ready file")
        return proc, json.loads(ready.read_text())

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
        proc.communicate(timeout=10)


async def _flood(port: int, count: int) -> list[asyncio.StreamWriter]:
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            break
        writers.append(writer)
    await asyncio.sleep(0.2)  # let the backend accept (or fail to)
    return writers


async def test_more_idle_connections_than_descriptors_do_not_stop_the_backend(
    start_backend,  # type: ignore[no-untyped-def]
) -> None:
    proc, urls = start_backend()
    port = int(urls["users"].rsplit(":", 1)[1])
    writers = await _flood(port, NOFILE + 80)
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            assert (await http.get(urls["control"] + "/stats")).status_code == 200
            refused = await http.get(urls["users"] + "/users/octocat")
            assert refused.status_code == 503  # a clear refusal, not a hang
            assert (await http.get(urls["orders"] + "/orders/1")).status_code in (200, 404)
            await eventually(lambda: _get_ok(http, urls["users"] + "/users/octocat"), timeout=15)
    finally:
        for writer in writers:
            writer.close()
    proc.terminate()
    _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr
    assert "Too many open files" not in stderr
    assert "out of file descriptors" not in stderr  # the cap kept it within the limit


async def test_running_out_of_descriptors_logs_one_line(
    start_backend,  # type: ignore[no-untyped-def]
) -> None:
    # a cap above the descriptor limit: accept() itself fails with EMFILE
    proc, urls = start_backend("--max-connections", "1000")
    port = int(urls["users"].rsplit(":", 1)[1])
    writers = await _flood(port, NOFILE + 80)
    await asyncio.sleep(2.5)  # asyncio retries accept every second
    for writer in writers:
        writer.close()
    async with httpx.AsyncClient(timeout=5) as http:
        await eventually(lambda: _get_ok(http, urls["users"] + "/users/octocat"), timeout=15)
    proc.terminate()
    _, stderr = proc.communicate(timeout=10)
    assert "Traceback" not in stderr
    assert stderr.count("out of file descriptors") == 1, stderr
