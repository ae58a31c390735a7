# The demo-server tests (bulkhead) run against the same live backend + server as the server's.
from collections.abc import AsyncIterator

import pytest

from tests.server.conftest import live, live_factory

from .reference_servers import EverythingHttp

__all__ = ["everything", "live", "live_factory"]


@pytest.fixture
async def everything(tmp_path) -> AsyncIterator[EverythingHttp]:
    """npm's reference "everything" server over Streamable HTTP; tests kill and restart it."""
    server = EverythingHttp(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.kill()
