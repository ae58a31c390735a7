"""Fixtures for the backend tests: a real Backend on loopback ephemeral ports."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from cblab.backend import Backend

Poll = Callable[..., Awaitable[Any]]


@pytest.fixture
async def backend() -> AsyncIterator[Backend]:
    async with Backend(seed=1) as started:
        yield started


def loopback_client(**kwargs: Any) -> httpx.AsyncClient:
    # plain HTTP on loopback: skip loading the CA bundle (~0.1 s per client)
    return httpx.AsyncClient(verify=False, **{"timeout": 5.0, **kwargs})


@pytest.fixture
def make_client() -> Callable[..., httpx.AsyncClient]:
    """`async with make_client(timeout=0.3) as http:` a client for loopback HTTP."""
    return loopback_client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with loopback_client() as http:
        yield http


@pytest.fixture
def poll() -> Poll:
    """`await poll(check, timeout=2.0)`: retry `check()` (sync or async) until it returns
    a truthy value or the deadline passes; returns that value."""

    async def _poll(check: Callable[[], Any], timeout: float = 2.0, interval: float = 0.005) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s (last: {value!r})")
            await asyncio.sleep(interval)

    return _poll
