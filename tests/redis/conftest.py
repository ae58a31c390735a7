"""A real redis-server for the whole session (never a fake), on an ephemeral port.

Persistence is off; the process is killed at the end. Tests that kill, pause or
restart Redis start their own server (`redis_factory`) so the shared one stays up.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator

import pytest

from cblab.stores.server import RedisServer

_namespaces = itertools.count()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    return redis_server.url


@pytest.fixture
def namespace(request: pytest.FixtureRequest) -> str:
    """A fresh namespace per test: tests share the server, never each other's keys."""
    return f"t{next(_namespaces)}-" + re.sub(r"[^A-Za-z0-9_.-]", "-", request.node.name)[:40]


@pytest.fixture
def redis_factory() -> Iterator[Callable[..., RedisServer]]:
    """Private servers for tests that kill, pause or restart Redis."""
    started: list[RedisServer] = []

    def start(**kwargs: object) -> RedisServer:
        server = RedisServer(**kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
