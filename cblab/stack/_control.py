"""Small HTTP clients for the backend's control API and a server's admin routes.

Every call exists twice: `set_faults(...)` (sync, quick, fine in a notebook cell)
and `await aset_faults(...)` (async, for live loops). Non-2xx answers raise
`ControlError` carrying the status and the server's message.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from fastmcp import Client

__all__ = ["BackendControl", "ControlError", "JSONObject", "ServerControl"]

#: A JSON object as the control and admin routes answer it.
JSONObject = dict[str, Any]

_TIMEOUT = httpx.Timeout(10.0, connect=5.0)


class ControlError(RuntimeError):
    """A control or admin call was refused; `status` is the HTTP status."""

    def __init__(self, method: str, url: str, status: int, detail: Any) -> None:
        self.status = status
        self.detail = detail
        message = detail
        if isinstance(detail, dict):
            message = detail.get("detail") or detail.get("error") or detail
        super().__init__(f"{method} {url} -> {status}: {message}")


def _segment(value: Any) -> str:
    return quote(str(value), safe="")


class _Endpoint:
    """Base URL + bearer token, with one sync client and one async client per loop."""

    def __init__(self, base_url: str, token: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"authorization": f"Bearer {token}"} if token else {}
        self._sync: httpx.Client | None = None
        self._async: httpx.AsyncClient | None = None
        self._async_loop: asyncio.AbstractEventLoop | None = None

    def _client(self) -> httpx.Client:
        if self._sync is None:
            self._sync = httpx.Client(timeout=_TIMEOUT, trust_env=False, headers=self._headers)
        return self._sync

    def _aclient(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async_loop is not loop or self._async.is_closed:
            # A client is bound to the loop it first ran on; a new loop gets a new one.
            self._async = httpx.AsyncClient(
                timeout=_TIMEOUT, trust_env=False, headers=self._headers
            )
            self._async_loop = loop
        return self._async

    @staticmethod
    def _result(method: str, response: httpx.Response) -> Any:
        kind = response.headers.get("content-type", "")
        if response.status_code >= 400:
            try:
                detail = response.json()
            except ValueError:
                detail = response.text
            raise ControlError(method, str(response.url), response.status_code, detail)
        if kind.startswith("application/json"):
            return response.json()
        return response.text

    def _do(self, method: str, path: str, **kwargs: Any) -> Any:  # JSON, or text
        response = self._client().request(method, self.base_url + path, **kwargs)
        return self._result(method, response)

    async def _ado(self, method: str, path: str, **kwargs: Any) -> Any:
        response = await self._aclient().request(method, self.base_url + path, **kwargs)
        return self._result(method, response)

    def close(self) -> None:
        if self._sync is not None:
            self._sync.close()
            self._sync = None
        # The async client belongs to a loop that may be gone: drop it (its
        # connections close with the process or when garbage-collected).
        self._async = None

    async def aclose(self) -> None:
        if self._async is not None and self._async_loop is asyncio.get_running_loop():
            await self._async.aclose()
        self.close()


class BackendControl(_Endpoint):
    """The backend's control API: faults, scenarios, stats.

    >>> stack.backend.set_faults("users", mode="down")          # doctest: +SKIP
    >>> stack.backend.patch_faults("users", error_rate=0.5)     # doctest: +SKIP
    >>> await stack.backend.aplay_scenario("outage", 0.5)       # doctest: +SKIP
    """

    def __init__(self, control_url: str, token: str | None, urls: dict[str, str]) -> None:
        super().__init__(control_url, token)
        self.urls = dict(urls)

    def url(self, service: str) -> str:
        try:
            return self.urls[service]
        except KeyError:
            raise KeyError(f"no service {service!r}; known: {sorted(self.urls)}") from None

    # faults
    def faults(self, service: str | None = None) -> JSONObject:
        return self._do("GET", "/faults" + (f"/{_segment(service)}" if service else ""))

    async def afaults(self, service: str | None = None) -> JSONObject:
        return await self._ado("GET", "/faults" + (f"/{_segment(service)}" if service else ""))

    def set_faults(self, service: str, **profile: Any) -> JSONObject:
        """Replace `service`'s fault profile (absent fields: healthy defaults)."""
        return self._do("PUT", f"/faults/{_segment(service)}", json=profile)

    async def aset_faults(self, service: str, **profile: Any) -> JSONObject:
        return await self._ado("PUT", f"/faults/{_segment(service)}", json=profile)

    def patch_faults(self, service: str, **fields: Any) -> JSONObject:
        """Change some fields of `service`'s fault profile."""
        return self._do("PATCH", f"/faults/{_segment(service)}", json=fields)

    async def apatch_faults(self, service: str, **fields: Any) -> JSONObject:
        return await self._ado("PATCH", f"/faults/{_segment(service)}", json=fields)

    def clear_faults(self) -> JSONObject:
        """Every service healthy again."""
        return self._do("DELETE", "/faults")

    async def aclear_faults(self) -> JSONObject:
        return await self._ado("DELETE", "/faults")

    # scenarios
    @staticmethod
    def _scenario_body(name: str | dict[str, Any], time_scale: float) -> dict[str, Any]:
        if isinstance(name, dict):
            return {"scenario": name, "time_scale": time_scale}
        return {"name": name, "time_scale": time_scale}

    def play_scenario(self, name: str | dict[str, Any], time_scale: float = 1.0) -> JSONObject:
        """Play a shipped scenario by name (or a scenario dict) live, replacing any other."""
        return self._do("POST", "/scenario", json=self._scenario_body(name, time_scale))

    async def aplay_scenario(self, name: str | dict[str, Any], time_scale: float = 1.0) -> JSONObject:
        return await self._ado("POST", "/scenario", json=self._scenario_body(name, time_scale))

    def stop_scenario(self) -> JSONObject:
        return self._do("DELETE", "/scenario")

    async def astop_scenario(self) -> JSONObject:
        return await self._ado("DELETE", "/scenario")

    def scenario(self) -> JSONObject:
        return self._do("GET", "/scenario")

    async def ascenario(self) -> JSONObject:
        return await self._ado("GET", "/scenario")

    # stats
    def stats(self) -> JSONObject:
        """`{"users": {...}, "orders": {...}}`: requests received, answered, in flight."""
        return self._do("GET", "/stats")

    async def astats(self) -> JSONObject:
        return await self._ado("GET", "/stats")

    def reset_stats(self) -> JSONObject:
        return self._do("POST", "/stats/reset")

    async def areset_stats(self) -> JSONObject:
        return await self._ado("POST", "/stats/reset")


class ServerControl(_Endpoint):
    """One demo server's plain HTTP routes: health, events, metrics, breaker admin."""

    def __init__(self, url: str, token: str | None, variant: str, mcp_path: str = "/mcp") -> None:
        super().__init__(url, token)
        self.variant = variant
        self.url = self.base_url
        self.mcp_url = self.base_url + mcp_path

    def client(self, **kwargs: Any) -> Client[Any]:
        """A fastmcp `Client` for this server's MCP endpoint (use `async with`)."""
        from fastmcp import Client

        return Client(self.mcp_url, **kwargs)

    def health(self) -> JSONObject:
        return self._do("GET", "/health")

    async def ahealth(self) -> JSONObject:
        return await self._ado("GET", "/health")

    def events(self, after: int = 0, limit: int | None = None) -> JSONObject:
        """`{"events": [rows], "last_seq", "missed", "now"}`: rows after sequence `after`."""
        return self._do("GET", "/events", params=_events_params(after, limit))

    async def aevents(self, after: int = 0, limit: int | None = None) -> JSONObject:
        return await self._ado("GET", "/events", params=_events_params(after, limit))

    def metrics(self) -> str:
        return self._do("GET", "/metrics")

    async def ametrics(self) -> str:
        return await self._ado("GET", "/metrics")

    def status(self) -> JSONObject:
        """Every breaker's status, by name."""
        return self._do("GET", "/admin/breakers")["breakers"]

    async def astatus(self) -> JSONObject:
        return (await self._ado("GET", "/admin/breakers"))["breakers"]

    def configure_breaker(self, name: str, **fields: Any) -> JSONObject:
        """Change some of breaker `name`'s settings live (PATCH); returns its status."""
        return self._do("PATCH", f"/admin/breakers/{_segment(name)}", json=fields)["breaker"]

    async def aconfigure_breaker(self, name: str, **fields: Any) -> JSONObject:
        path = f"/admin/breakers/{_segment(name)}"
        return (await self._ado("PATCH", path, json=fields))["breaker"]

    def replace_breaker_config(self, name: str, config: dict[str, Any]) -> JSONObject:
        """Replace breaker `name`'s whole config (PUT; absent fields take defaults)."""
        return self._do("PUT", f"/admin/breakers/{_segment(name)}", json=config)["breaker"]

    async def areplace_breaker_config(self, name: str, config: dict[str, Any]) -> JSONObject:
        path = f"/admin/breakers/{_segment(name)}"
        return (await self._ado("PUT", path, json=config))["breaker"]

    def force(self, name: str, action: str) -> JSONObject:
        """`action`: force_open, force_closed, disable or reset. Returns the status."""
        path = f"/admin/breakers/{_segment(name)}/{_segment(action)}"
        return self._do("POST", path)["breaker"]

    async def aforce(self, name: str, action: str) -> JSONObject:
        path = f"/admin/breakers/{_segment(name)}/{_segment(action)}"
        return (await self._ado("POST", path))["breaker"]

    def reset(self, *names: str) -> None:
        """Reset the named breakers (all when none are named)."""
        for name in names or tuple(self.status()):
            self.force(name, "reset")

    async def areset(self, *names: str) -> None:
        for name in names or tuple(await self.astatus()):
            await self.aforce(name, "reset")


def _events_params(after: int, limit: int | None) -> dict[str, int]:
    params = {"after": after}
    if limit is not None:
        params["limit"] = limit
    return params
