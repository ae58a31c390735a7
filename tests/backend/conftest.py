"""Fixtures for the backend tests: a real Backend on loopback ephemeral ports."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from cblab.backend import Backend
from tests.helpers import eventually

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
    """`await poll(check)`: `tests.helpers.eventually`, the suite's one poll helper."""
    return eventually
