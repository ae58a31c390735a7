from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cblab.proxy import FaultProxy
from cblab.server.app import ServerRunner

from .servers import build_upstream

STDIO_SERVER = [sys.executable, str(Path(__file__).with_name("servers.py"))]


@pytest.fixture
async def upstream() -> AsyncIterator[ServerRunner]:
    """The test server over Streamable HTTP on a loopback port."""
    async with ServerRunner(build_upstream()) as runner:
        yield runner


@pytest.fixture
async def proxy(upstream: ServerRunner) -> AsyncIterator[FaultProxy]:
    async with FaultProxy(upstream.mcp_url, seed=7, token="control-secret") as proxy:
        yield proxy
