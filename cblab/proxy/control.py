"""The proxy's control API: JSON over HTTP on its own loopback listener.

The backend's rules (`cblab.backend.control`): every route but GET /health needs
``Authorization: Bearer <token>`` when the proxy has a token (compared in constant
time), and every one a loopback Host and, if sent, a loopback Origin
(`cblab.backend.guard`); errors are ``{"error": message}`` with 400 invalid JSON,
401 bad token, 403 foreign Origin, 421 foreign Host, 404 unknown route or tool, 405 wrong method, 413 body too large, 422 invalid
profile or scenario (the message names the field).

    GET    /health                 {"status": "ok" | "degraded", "upstream", "upstream_state":
                                   {"state", "since", "for_s", "restarts", "last_error"},
                                   "listening", "mcp_url"} ("degraded": the upstream
                                   is not connected; see `cblab.proxy.health`)
    GET    /tools                  {"tools": [the upstream's tool names]}
    GET    /faults                 {"*": <fault>, <tool>: <fault>, ...} (targets set)
    DELETE /faults                 every tool healthy; same shape
    GET    /faults/{target}        <fault> in force for a tool or "*"
    PUT    /faults/{target}        body <fault> (absent fields: healthy defaults)
    PATCH  /faults/{target}        body <partial fault>, merged into the current one
    DELETE /faults/{target}        a tool follows "*" again ("*": healthy)
    GET    /scenarios              {"scenarios": [names shipped in data/scenarios]}
    GET    /scenario               playback status
    POST   /scenario               {"name": str} or {"scenario": {...}}, opt. "time_scale",
                                   "services" ({"users": "*"} by default)
    DELETE /scenario               stop playback, every tool healthy
    GET    /events?after=N&limit=M {"events": [schema rows, source "proxy"], "last_seq", ...}
    GET    /stats                  {"listening", "held", "upstream": <upstream_state>,
                                   "tools": {tool: {outcome: n}}}

A <fault> is a backend fault profile plus ``"error_as"``: ``"is_error"`` or
``"jsonrpc"`` (see `cblab.proxy.faults`). ``"*"`` may be URL-encoded (``%2A``).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from cblab.backend.guard import HostGuard
from cblab.backend.http import HttpError, Request, Response, json_response
from cblab.backend.jsonapi import (
    Invalid,
    JsonApi,
    body_object,
    scenario_fields,
    scenario_name,
    time_scale_field,
)
from cblab.faults.profile import ProfileError
from cblab.faults.scenario import ScenarioError, available_scenarios

from .faults import UnknownToolError
from .scenario import ProxyScenario
from .upstream import ProxyError

if TYPE_CHECKING:
    from .server import FaultProxy

__all__ = ["MAX_EVENTS_LIMIT", "ProxyControl"]

MAX_EVENTS_LIMIT = 10_000


def _int_param(query: dict[str, list[str]], name: str, default: int | None, high: int) -> int | None:
    values = query.get(name)
    if not values:
        return default
    try:
        value = int(values[-1], 10)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, got {values[-1]!r}") from None
    if not 0 <= value <= high:
        raise HttpError(400, f"{name} must be between 0 and {high}, got {value}")
    return value


class ProxyControl(JsonApi):
    def __init__(self, proxy: FaultProxy, token: str | None = None,
                 guard: HostGuard | None = None) -> None:
        super().__init__(token, guard, [
            ((Invalid, ProfileError, ScenarioError), 422, "{}"),
            (UnknownToolError, 404, "{}"),
            ((OSError, ProxyError), 503, "could not re-open the proxy's listener: {}"),
        ], unquote_params=True)
        self._proxy = proxy
        target = r"(?P<target>[^/]+)"
        self._routes = [
            (re.compile(r"^/health$"), {"GET": self._health}),
            (re.compile(r"^/tools$"), {"GET": self._tools}),
            (re.compile(r"^/faults$"), {"GET": self._get_faults, "DELETE": self._clear_faults}),
            (re.compile(rf"^/faults/{target}$"), {
                "GET": self._get_fault, "PUT": self._put_fault, "PATCH": self._patch_fault,
                "DELETE": self._delete_fault,
            }),
            (re.compile(r"^/scenarios$"), {"GET": self._list_scenarios}),
            (re.compile(r"^/scenario$"), {
                "GET": self._get_scenario, "POST": self._post_scenario,
                "DELETE": self._delete_scenario,
            }),
            (re.compile(r"^/events$"), {"GET": self._events}),
            (re.compile(r"^/stats$"), {"GET": self._stats}),
        ]

    # --- routes -----------------------------------------------------------------------

    async def _health(self, request: Request, params: dict[str, str]) -> Response:
        proxy = self._proxy
        return json_response(200, {
            "status": "ok" if proxy.health.connected else "degraded",
            "upstream": proxy.upstream.describe(), "upstream_state": proxy.health.to_dict(),
            "listening": proxy.listening, "mcp_url": proxy.mcp_url})

    async def _tools(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"tools": list(self._proxy.tools)})

    async def _get_faults(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._proxy.faults())

    async def _clear_faults(self, request: Request, params: dict[str, str]) -> Response:
        await self._proxy.clear_fault(None)
        return json_response(200, self._proxy.faults())

    async def _get_fault(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._proxy.table.get(params["target"]).to_dict())

    async def _put_fault(self, request: Request, params: dict[str, str]) -> Response:
        target = self._proxy.table.check_name(params["target"])  # 404 before 422
        fault = await self._proxy.set_fault(target, body_object(request))
        return json_response(200, fault.to_dict())

    async def _patch_fault(self, request: Request, params: dict[str, str]) -> Response:
        target = self._proxy.table.check_name(params["target"])
        fault = await self._proxy.patch_fault(target, body_object(request))
        return json_response(200, fault.to_dict())

    async def _delete_fault(self, request: Request, params: dict[str, str]) -> Response:
        target = params["target"]
        await self._proxy.clear_fault(self._proxy.table.check_name(target))
        return json_response(200, self._proxy.table.get(target).to_dict())

    async def _list_scenarios(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"scenarios": available_scenarios()})

    async def _get_scenario(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._proxy.scenario_status())

    async def _post_scenario(self, request: Request, params: dict[str, str]) -> Response:
        body = body_object(request)
        scenario_fields(body, ("name", "scenario", "time_scale", "services"))
        services = body.get("services")
        if services is not None and not isinstance(services, dict):
            raise Invalid(f"services must map a backend service to a tool or '*', got {services!r}")
        if "name" in body:
            # never a path: remote input
            scenario = ProxyScenario.named(scenario_name(body), services)
        else:
            scenario = ProxyScenario.from_dict(body["scenario"], services)
        time_scale = time_scale_field(body)
        await self._proxy.play(scenario, time_scale)
        return json_response(200, self._proxy.scenario_status())

    async def _delete_scenario(self, request: Request, params: dict[str, str]) -> Response:
        await self._proxy.stop_scenario()
        return json_response(200, self._proxy.scenario_status())

    async def _events(self, request: Request, params: dict[str, str]) -> Response:
        query = parse_qs(request.query, keep_blank_values=True)
        after = _int_param(query, "after", 0, 2**62) or 0
        limit = _int_param(query, "limit", None, MAX_EVENTS_LIMIT)
        assert self._proxy.events is not None
        return json_response(200, self._proxy.events.rows(after, limit))

    async def _stats(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._proxy.stats())
