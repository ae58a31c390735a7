# The demo-server tests (bulkhead) run against the same live backend + server as the server's.
from collections.abc import AsyncIterator

import pytest

from cblab.testing.reference import EverythingHttp
from tests.server.conftest import live, live_factory

__all__ = ["everything", "live", "live_factory"]


@pytest.fixture
async def everything(tmp_path) -> AsyncIterator[EverythingHttp]:
    """npm's reference "everything" server over Streamable HTTP; tests kill and restart it."""
    server = EverythingHttp(log=tmp_path / "everything.log")
    await server.start()
    try:
        yield server
    finally:
        server.kill()
