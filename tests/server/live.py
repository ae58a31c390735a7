"""A live backend + demo server on loopback, in the test's event loop (real listeners,
real Streamable HTTP), shared by the server and load tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastmcp import Client, FastMCP

from cblab.backend import Backend
from cblab.server import LabServer, ServerRunner, ServerSettings, build_server, lab_of
from tests.helpers import eventually  # noqa: F401  (re-exported for the server and load tests)

TOKEN = "test-admin-token-0123456789"
FAST_GITHUB = {"failure_threshold": 3, "timeout": 0.2}
FAST_DATABASE = {"failure_threshold": 3, "timeout": 0.2}


@dataclass
class Live:
    backend: Backend
    runner: ServerRunner
    mcp: FastMCP

    @property
    def lab(self) -> LabServer:
        return lab_of(self.mcp)

    @property
    def url(self) -> str:
        return self.runner.url

    @property
    def mcp_url(self) -> str:
        return self.runner.mcp_url

    def client(self) -> Client:
        return Client(self.mcp_url)

    def state(self, breaker: str = "github") -> str:
        return self.lab.registry[breaker].state.value

    def rows(self) -> list[dict[str, Any]]:
        return self.lab.instrumentation.rows()["events"]


async def start_live(**settings: Any) -> Live:
    backend = Backend(seed=1)
    await backend.start()
    options: dict[str, Any] = {
        "github": FAST_GITHUB, "database": FAST_DATABASE, "deadline": 1.0,
        "admin_token": TOKEN,
    }
    options.update(settings)
    mcp = build_server(ServerSettings(
        users_url=backend.urls["users"], orders_url=backend.urls["orders"], **options,
    ))
    runner = ServerRunner(mcp)
    try:
        await runner.start()
    except BaseException:
        await backend.stop()
        raise
    return Live(backend, runner, mcp)


async def stop_live(live: Live) -> None:
    await live.runner.stop()
    await live.backend.stop()


def error_text(result: Any) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)
