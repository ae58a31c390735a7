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

import hmac
import math
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from cblab.faults.profile import FaultProfile, ProfileError
from cblab.faults.scenario import Scenario, ScenarioError, UnknownServiceError, available_scenarios

from .guard import HostGuard
from .http import Connection, HttpError, Request, Response, json_response

if TYPE_CHECKING:
    from .app import Backend

__all__ = ["ControlApi"]

Route = Callable[[Request, dict[str, str]], Awaitable[Response]]


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, {"error": message}, headers)


class _Invalid(Exception):
    """Bad input in a well-formed request: answered 422."""


def _body_object(request: Request) -> dict[str, Any]:
    data = request.json()  # HttpError 400 on invalid JSON
    if not isinstance(data, dict):
        raise _Invalid(f"request body must be a JSON object, got {type(data).__name__}")
    return data


class ControlApi:
    def __init__(
        self, backend: Backend, token: str | None = None, guard: HostGuard | None = None
    ) -> None:
        self._backend = backend
        self._guard = guard if guard is not None else HostGuard("127.0.0.1")
        self._token = token.encode() if token else None
        service = r"(?P<service>[^/]+)"
        self._routes: list[tuple[re.Pattern[str], dict[str, Route]]] = [
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

    async def handle(self, request: Request, conn: Connection) -> Response:
        refusal = self._guard.refusal(request.headers)
        if refusal is not None:
            return _error(*refusal)
        path = request.path.rstrip("/") or "/"
        for pattern, methods in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            route = methods.get(request.method)
            if route is None:
                allow = ", ".join(methods)
                return _error(
                    405,
                    f"{request.method} not allowed on {path}; allowed: {allow}",
                    [("Allow", allow)],
                )
            if route != self._health and not self._authorized(request):
                return _error(
                    401, "missing or invalid bearer token", [("WWW-Authenticate", "Bearer")]
                )
            try:
                return await route(request, match.groupdict())
            except HttpError as exc:
                return _error(exc.status, exc.message)
            except (_Invalid, ProfileError, ScenarioError) as exc:
                return _error(422, str(exc))
            except UnknownServiceError as exc:
                return _error(404, str(exc))
            except OSError as exc:
                return _error(503, f"could not re-bind the service's port: {exc}")
        return _error(404, f"no route for {request.method} {path}")

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token
        )

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
        profile = FaultProfile.from_dict(_body_object(request))
        await self._backend.set_profile(service, profile)
        return json_response(200, profile.to_dict())

    async def _patch_fault(self, request: Request, params: dict[str, str]) -> Response:
        service = params["service"]
        self._backend.profile(service)
        profile = await self._backend.patch_profile(service, _body_object(request))
        return json_response(200, profile.to_dict())

    async def _list_scenarios(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, {"scenarios": available_scenarios()})

    async def _get_scenario(self, request: Request, params: dict[str, str]) -> Response:
        return json_response(200, self._backend.scenario_status())

    async def _post_scenario(self, request: Request, params: dict[str, str]) -> Response:
        body = _body_object(request)
        unknown = sorted(set(body) - {"name", "scenario", "time_scale"})
        if unknown:
            raise _Invalid(
                f"unknown field {unknown[0]!r}; known fields: name, scenario, time_scale"
            )
        if ("name" in body) == ("scenario" in body):
            raise _Invalid(
                "give exactly one of 'name' (a shipped scenario) or 'scenario' "
                "(an inline scenario object)"
            )
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str):
                raise _Invalid(f"name must be a string, got {name!r}")
            scenario = Scenario.named(name)
        else:
            scenario = Scenario.from_dict(body["scenario"])
        time_scale = body.get("time_scale", 1.0)
        if (
            isinstance(time_scale, bool)
            or not isinstance(time_scale, (int, float))
            or not (math.isfinite(time_scale) and time_scale > 0)
        ):
            raise _Invalid(f"time_scale must be a finite number > 0, got {time_scale!r}")
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
