"""Helpers for the tests against the official reference MCP servers (not written here).

`EverythingHttp` (`cblab.testing.reference`) runs npm's "everything" server over
Streamable HTTP and can kill it and start it again on the same port. `listing` reads a server's listings and identity through a real
`fastmcp.Client`; `RawClient` speaks JSON-RPC over HTTP by hand, for what the
fastmcp client has no call for (task-augmented calls).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
from fastmcp import Client

from cblab.stores.server import free_port  # one loopback-port helper for every test
from cblab.testing.reference import EverythingHttp

__all__ = ["EverythingHttp", "RawClient", "free_port", "listing"]


async def listing(target: Any) -> dict[str, Any]:
    """Every listing and the server's identity, as a real client sees them."""
    async with Client(target) as client:
        tools = await client.list_tools_mcp()
        resources = await client.list_resources_mcp()
        templates = await client.list_resource_templates_mcp()
        prompts = await client.list_prompts_mcp()
        init = client.initialize_result
    dump = {"by_alias": True, "exclude_none": True}
    return {
        "tools": tools.model_dump(**dump), "resources": resources.model_dump(**dump),
        "templates": templates.model_dump(**dump), "prompts": prompts.model_dump(**dump),
        "initialize": init.model_dump(**dump) if init is not None else None,
    }


class RawClient:
    """JSON-RPC by hand over Streamable HTTP, handshake era (2025-11-25)."""

    VERSION = "2025-11-25"

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.AsyncClient(timeout=60)
        self.session: str | None = None
        self._ids = 0

    async def aclose(self) -> None:
        await self.http.aclose()

    async def initialize(self) -> dict[str, Any]:
        answer = await self.request("initialize", {
            "protocolVersion": self.VERSION, "capabilities": {"tasks": {}},
            "clientInfo": {"name": "cblab-tests", "version": "1"}})
        await self.notify("notifications/initialized")
        return answer

    def _headers(self) -> dict[str, str]:
        headers = {"accept": "application/json, text/event-stream",
                   "mcp-protocol-version": self.VERSION}
        if self.session:
            headers["mcp-session-id"] = self.session
        return headers

    async def notify(self, method: str) -> None:
        await self.http.post(self.url, json={"jsonrpc": "2.0", "method": method},
                             headers=self._headers())

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._ids += 1
        message = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params}
        response = await self.http.post(self.url, json=message, headers=self._headers())
        self.session = response.headers.get("mcp-session-id", self.session)
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return dict(response.json())
        for block in response.text.replace("\r\n", "\n").split("\n\n"):
            data = "\n".join(line[5:].strip() for line in block.splitlines()
                             if line.startswith("data:"))
            if data:
                answer = json.loads(data)
                if answer.get("id") == self._ids:
                    return dict(answer)
        raise AssertionError(f"no answer to {method} in {response.text[:300]!r}")
