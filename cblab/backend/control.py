"""The control API: JSON over HTTP on its own listener (it survives "down").

Routes (every one but GET /health needs `Authorization: Bearer <token>` when the
backend has a token; every one needs a loopback Host and, if sent, a loopback
Origin, see `guard`):

    GET    /health                 {"status": "ok"}
    GET    /faults                 {"users": <profile>, "orders": <profile>}
    DELETE /faults                 every service back to healthy; same shape
    GET    /faults/{service}       <profile>
    PUT    /faults/{service}       body <profile> (absent fields: healthy defaults)
    PATCH  /faults/{service}       body <partial profile>, merged into the current one
    GET    /scenarios              {"scenarios": [names shipped in data/scenarios]}
    GET    /scenario               playback status (see ScenarioPlayer.status)
    POST   /scenario               {"name": str} or {"scenario": {...}}, opt. "time_scale"
    DELETE /scenario               stop playback, all services healthy
    GET    /stats                  {"users": <stats>, "orders": <stats>}
    POST   /stats/reset            zero the counters; returns the new stats

Errors are `{"error": message}`: 400 invalid JSON (also nested deeper than 32
levels, integers over 18 digits, NaN/Infinity), 401 bad token, 403 foreign
Origin, 404 unknown route or service, 405 wrong method, 413 body too large, 421
foreign Host, 422 invalid profile or scenario (the message names the field), 503
a port could not be re-bound.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from cblab.faults.profile import FaultProfile, ProfileError
from cblab.faults.scenario import Scenario, ScenarioError, UnknownServiceError, available_scenarios

from .guard import HostGuard
from .http import Request, Response, json_response
from .jsonapi import Invalid, JsonApi, body_object, scenario_fields, scenario_name, time_scale_field

if TYPE_CHECKING:
    from .app import Backend

__all__ = ["ControlApi"]


class ControlApi(JsonApi):
    def __init__(
        self, backend: Backend, token: str | None = None, guard: HostGuard | None = None
    ) -> None:
        super().__init__(token, guard, [
            ((Invalid, ProfileError, ScenarioError), 422, "{}"),
            (UnknownServiceError, 404, "{}"),
            (OSError, 503, "could not re-bind the service's port: {}"),
        ])
        self._backend = backend
        service = r"(?P<service>[^/]+)"
        self._routes = [
            (re.compile(r"^/health$"), {"GET": self._health}),
            (re.compile(r"^/faults$"), {"GET": self._get_faults, "DELETE": self._clear_faults}),
            (
                re.compile(rf"^/faults/{service}$"),
                {"GET": self._get_fault, "PUT": self._put_fault, "PATCH": self._patch_fault},
            ),
            (re.compile(r"^/scenarios$"), {"GET": self._list_scenarios}),
            (
                re.compile(r"^/scenario$"),
                {
                    "GET": self._get_scenario,
                    "POST": self._post_scenario,
                    "DELETE": self._delete_scenario,
                },
            ),
            (re.compile(r"^/stats$"), {"GET": self._get_stats}),
            (re.compile(r"^/stats/reset$"), {"POST": self._reset_stats}),
        ]

    # --- routes -----------------------------------------------------------------------

    async def _health(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"status": "ok"})

    def _all_faults(self) -> Response:
        profiles = self._backend.profiles
        return json_response(200, {name: p.to_dict() for name, p in profiles.items()})

    async def _get_faults(self, request: Request, params: dict[str, str]) -> Response:
        return self._all_faults()

    async def _clear_faults(self, request: Request, params: dict[str, str]) -> Response:
        await self._backend.reset_profiles()
        return self._all_faults()

    async def _get_fault(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._backend.profile(params["service"]).to_dict())

    async def _put_fault(self, request: Request, params: dict[str, str]) -> Response:
        service = params["service"]
        self._backend.profile(service)  # 404 before a 422 for an unknown service
        profile = FaultProfile.from_dict(body_object(request))
        await self._backend.set_profile(service, profile)
        return json_response(200, profile.to_dict())

    async def _patch_fault(self, request: Request, params: dict[str, str]) -> Response:
        service = params["service"]
        self._backend.profile(service)
        profile = await self._backend.patch_profile(service, body_object(request))
        return json_response(200, profile.to_dict())

    async def _list_scenarios(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"scenarios": available_scenarios()})

    async def _get_scenario(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._backend.scenario_status())

    async def _post_scenario(self, request: Request, params: dict[str, str]) -> Response:
        body = body_object(request)
        scenario_fields(body, ("name", "scenario", "time_scale"))
        if "name" in body:
            scenario = Scenario.named(scenario_name(body))
        else:
            scenario = Scenario.from_dict(body["scenario"])
        time_scale = time_scale_field(body)
        await self._backend.play(scenario, time_scale)
        return json_response(200, self._backend.scenario_status())

    async def _delete_scenario(self, request: Request, params: dict[str, str]) -> Response:
        await self._backend.stop_scenario()
        return json_response(200, self._backend.scenario_status())

    async def _get_stats(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._backend.stats())

    async def _reset_stats(self, request: Request, params: dict[str, str]) -> Response:
        self._backend.reset_stats()
        return json_response(200, self._backend.stats())
