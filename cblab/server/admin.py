"""Plain HTTP routes beside `/mcp`: health, events, metrics and breaker admin.

=========================================  ===============================================
``GET /health``                            `{"status": "ok", "variant", "protected",
                                           "uptime_s", "mcp_path", "backend": {...}}`
``GET /events?after=SEQ&limit=N``          `{"events": [schema rows], "last_seq", "missed",
                                           "now"}`; 400 `{"error": "bad_request",
                                           "detail"}` for bad parameters
``GET /metrics``                           Prometheus text (see `metrics`)
``GET /admin/breakers``                    `{"variant", "protected", "breakers":
                                           {name: status}}`
``PUT /admin/breakers/{name}``             body: a whole config (`CircuitBreakerConfig.
                                           from_dict`; missing fields take defaults)
``PATCH /admin/breakers/{name}``           body: the fields to change
                                           -> `{"breaker": status}`; 422
                                           `{"error": "invalid_config", "detail"}` naming
                                           the field; 404 unknown breaker
``POST /admin/breakers/{name}/{action}``   action: force_open, force_closed, disable,
                                           reset -> `{"breaker": status}`
=========================================  ===============================================

Admin routes need ``Authorization: Bearer <token>`` (compared in constant time):
401 without it or with a wrong one; 403 when the server has no admin token (admin
disabled). FastMCP's own auth does not cover custom routes, hence this check.
Every route, admin or not, also needs a loopback Host and (if sent) Origin:
fastmcp's `host_origin_protection="auto"` answers 421 / 403 before any route runs.
A body that is not JSON, or is nested deeper than 32 levels, or holds an integer
over 18 digits or NaN/Infinity, gets 400 `bad_request` (`cblab.strict_json`).

On an unprotected server `reset` puts the breaker back to its unprotected mode
(disabled), so the variant stays what it claims to be; the other actions do
exactly what they say.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cblab import CircuitBreakerConfig, ConfigError
from cblab.integrations.middleware import json_safe as _json_safe
from cblab.strict_json import loads_json

from . import metrics

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from .app import LabServer

__all__ = ["ACTIONS", "MAX_EVENTS_LIMIT", "register_routes", "render_metrics_text"]

ACTIONS = ("force_open", "force_closed", "disable", "reset")
MAX_EVENTS_LIMIT = 10_000
_CODE_FIELDS = {"excluded_exceptions", "is_excluded"}

Handler = Callable[[Request], Awaitable[Response]]


def _error(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status)


def _int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw, 10)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _shared_state(instr: Any) -> dict[str, Any]:
    """`replica` and `shared_state` (the store's status) when breaker state is shared."""
    store = getattr(instr, "shared_state", None)
    if store is None:
        return {}
    return {"replica": store.replica, "shared_state": store.status()}


def register_routes(mcp: FastMCP, lab: LabServer) -> None:
    settings = lab.settings
    registry = lab.registry
    instr = lab.instrumentation
    token = settings.admin_token.encode() if settings.admin_token else None

    def admin(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if token is None:
                return _error(403, "admin_disabled",
                              "admin routes are disabled: the server has no admin token")
            header = request.headers.get("authorization", "")
            scheme, _, given = header.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), token
            ):
                return JSONResponse(
                    {"error": "unauthorized",
                     "detail": "send Authorization: Bearer <admin token>"},
                    status_code=401, headers={"WWW-Authenticate": 'Bearer realm="cblab-admin"'},
                )
            return await handler(request)

        guarded.__name__ = handler.__name__
        return guarded

    @mcp.custom_route("/health", methods=["GET"])
    async def health(request: Request) -> Response:
        return JSONResponse({
            "status": "ok",
            "variant": settings.variant_label,
            "protected": settings.protected,
            "uptime_s": instr.now(),
            "mcp_path": "/mcp",
            "backend": {"users": settings.users_url, "orders": settings.orders_url},
            **_shared_state(instr),
        })

    @mcp.custom_route("/events", methods=["GET"])
    async def events(request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"after", "limit"})
        if unknown:
            return _error(400, "bad_request",
                          f"unknown parameter(s): {', '.join(unknown)}; known: after, limit")
        try:
            after = _int_param(request, "after", 0, 0, 2**63 - 1)
            limit = _int_param(request, "limit", MAX_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT)
        except ValueError as exc:
            return _error(400, "bad_request", str(exc))
        return JSONResponse(instr.rows(after or 0, limit))

    @mcp.custom_route("/metrics", methods=["GET"])
    async def prometheus(request: Request) -> Response:
        return PlainTextResponse(metrics.render(registry, instr), media_type=metrics.CONTENT_TYPE)

    def breaker_or_404(request: Request) -> Any:
        name = request.path_params["name"]
        if name not in registry:
            return None, _error(404, "unknown_breaker", f"no breaker named {name!r}",
                                known=registry.names())
        return registry[name], None

    @mcp.custom_route("/admin/breakers", methods=["GET"])
    @admin
    async def list_breakers(request: Request) -> Response:
        return JSONResponse(_json_safe({
            "variant": settings.variant_label,
            "protected": settings.protected,
            "breakers": registry.status(),
            **_shared_state(instr),
        }))

    @mcp.custom_route("/admin/breakers/{name}", methods=["GET", "PUT", "PATCH"])
    @admin
    async def configure(request: Request) -> Response:
        breaker, missing = breaker_or_404(request)
        if missing is not None:
            return missing
        if request.method == "GET":
            return JSONResponse(_json_safe({"breaker": breaker.get_status()}))
        try:
            body = loads_json(await request.body() or b"null")
        except ValueError as exc:
            return _error(400, "bad_request", f"body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return _error(422, "invalid_config",
                          f"configuration must be a JSON object, got {type(body).__name__}")
        try:
            if request.method == "PUT":
                config = CircuitBreakerConfig.from_dict(body)
            else:
                code = sorted(_CODE_FIELDS & set(body))
                if code:
                    raise ConfigError(f"{', '.join(code)} cannot be set over HTTP (it is code)")
                config = breaker.config.replace(**body)
        except (ConfigError, ValueError, TypeError) as exc:
            return _error(422, "invalid_config", str(exc))
        breaker.reconfigure(config)
        return JSONResponse(_json_safe({"breaker": breaker.get_status()}))

    @mcp.custom_route("/admin/breakers/{name}/{action}", methods=["POST"])
    @admin
    async def act(request: Request) -> Response:
        breaker, missing = breaker_or_404(request)
        if missing is not None:
            return missing
        action = request.path_params["action"]
        if action not in ACTIONS:
            return _error(404, "unknown_action", f"no action {action!r}", known=list(ACTIONS))
        getattr(breaker, action)(f"{action} by admin")
        if action == "reset" and not settings.protected:
            breaker.disable("unprotected mode: metrics only")
        return JSONResponse(_json_safe({"breaker": breaker.get_status()}))


def render_metrics_text(lab: LabServer) -> str:
    """The same text `/metrics` serves (handy in-process)."""
    return metrics.render(lab.registry, lab.instrumentation)

