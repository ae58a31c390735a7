"""Helpers for the abuse tests: raw sockets against real servers on loopback."""

from __future__ import annotations

import asyncio

from tests.helpers import eventually

__all__ = ["eventually", "read_until_closed", "status_of"]


async def read_until_closed(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """Everything the server sends until it closes; TimeoutError if it never does."""
    async with asyncio.timeout(timeout):
        try:
            return await reader.read(-1)
        except ConnectionResetError:
            return b""


def status_of(raw: bytes) -> int | None:
    return int(raw.split(b" ", 2)[1]) if raw.startswith(b"HTTP/1.") else None
