"""`/metrics`, `/events` and breaker admin routes, mountable on any FastMCP server's HTTP app.

    from cblab.integrations import CircuitBreakerMiddleware, mount_routes

    protection = CircuitBreakerMiddleware(...)
    mcp.add_middleware(protection)
    mount_routes(mcp, protection, admin_token=os.environ["ADMIN_TOKEN"])

`source` is anything with the breakers: a `CircuitBreakerMiddleware`, a
`BreakerTransport`, a `GuardedClient` or a `BreakerRegistry`.

=========================================  ===============================================
``GET /metrics``                           Prometheus text (`cblab.integrations.prometheus`)
``GET /events?after=SEQ&limit=N``          `{"events": [...], "last_seq", "missed"}`: the
                                           breakers' calls and state changes in one
                                           sequence; 400 `bad_request` for bad parameters
``GET /admin/breakers``                    `{"breakers": {name: status}}`
``GET /admin/breakers/{name}``             `{"breaker": status}`
``PUT /admin/breakers/{name}``             body: a whole config (`CircuitBreakerConfig.
                                           from_dict`; missing fields take defaults)
``PATCH /admin/breakers/{name}``           body: the fields to change -> `{"breaker":
                                           status}`; 422 `invalid_config` naming the field;
                                           404 unknown breaker
``POST /admin/breakers/{name}/{action}``   action: force_open, force_closed, disable,
                                           reset -> `{"breaker": status}`
=========================================  ===============================================

Admin routes need ``Authorization: Bearer <token>`` (compared in constant time): 401
without it or with a wrong one; 403 when no token is configured (admin off). FastMCP's
own auth does not cover custom routes, hence this check; serve the app with
``host_origin_protection="auto"`` so foreign Host/Origin headers are refused too. A body
that is not JSON, too deep, or holds huge integers or NaN gets 400 (`cblab.strict_json`).
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

from cblab import BreakerRegistry, CircuitBreaker, CircuitBreakerConfig, ConfigError
from cblab.strict_json import loads_json

from . import prometheus
from .middleware import json_safe

__all__ = ["ACTIONS", "MAX_EVENTS_LIMIT", "mount_routes", "registry_of"]

ACTIONS = ("force_open", "force_closed", "disable", "reset")
MAX_EVENTS_LIMIT = 10_000
_CODE_FIELDS = {"excluded_exceptions", "is_excluded"}

Handler = Callable[[Request], Awaitable[Response]]


def registry_of(source: Any) -> BreakerRegistry:
    """The `BreakerRegistry` behind a middleware, transport, guard (or a registry itself)."""
    registry = source if isinstance(source, BreakerRegistry) else getattr(source, "registry", None)
    if not isinstance(registry, BreakerRegistry):
        raise TypeError(f"no breakers in {source!r}: pass a CircuitBreakerMiddleware, "
                        "BreakerTransport, GuardedClient or BreakerRegistry")
    return registry


def error_response(status: int, error: str, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status)


def int_param(request: Request, name: str, default: int | None, low: int, high: int) -> int | None:
    """An integer query parameter within [low, high]; ValueError naming it otherwise."""
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


def _log_events(registry: BreakerRegistry) -> Callable[[int, int | None], dict[str, Any]]:
    def events(after: int, limit: int | None) -> dict[str, Any]:
        part = registry.event_log.since(after, limit)
        return {"events": [{"seq": seq, **event.to_dict()} for seq, event in part.events],
                "last_seq": part.last_seq, "missed": part.missed}
    return events


def mount_routes(
    mcp: Any,
    source: Any,
    *,
    admin_token: str | None = None,
    events: Callable[[int, int | None], dict[str, Any]] | None = None,
    metrics: Callable[[], str] | None = None,
    describe: Callable[[], dict[str, Any]] | None = None,
    after_action: Callable[[CircuitBreaker, str], None] | None = None,
) -> None:
    """Add the routes in the module table to `mcp` (a FastMCP server), over `source`'s breakers.

    Hooks for servers that know more (the demo server uses them): `events(after, limit)`
    answers `/events`, `metrics()` renders `/metrics`, `describe()` adds fields to
    `GET /admin/breakers`, `after_action(breaker, action)` runs after an admin action.
    """
    registry = registry_of(source)
    if admin_token is not None and (not isinstance(admin_token, str) or len(admin_token) < 8):
        raise ConfigError("admin_token must be a string of at least 8 characters")
    token = admin_token.encode() if admin_token else None
    events = events if events is not None else _log_events(registry)
    bulkheads = getattr(source, "bulkheads", None)
    if metrics is None:
        def metrics() -> str:
            return prometheus.render(registry, bulkheads=bulkheads)

    def admin(handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            if token is None:
                return error_response(403, "admin_disabled",
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

    @mcp.custom_route("/events", methods=["GET"])
    async def event_log(request: Request) -> Response:
        unknown = sorted(set(request.query_params) - {"after", "limit"})
        if unknown:
            return error_response(
                400, "bad_request", f"unknown parameter(s): {', '.join(unknown)}; known: after, limit")
        try:
            after = int_param(request, "after", 0, 0, 2**63 - 1)
            limit = int_param(request, "limit", MAX_EVENTS_LIMIT, 1, MAX_EVENTS_LIMIT)
        except ValueError as exc:
            return error_response(400, "bad_request", str(exc))
        return JSONResponse(events(after or 0, limit))

    @mcp.custom_route("/metrics", methods=["GET"])
    async def prometheus_text(request: Request) -> Response:
        return PlainTextResponse(metrics(), media_type=prometheus.CONTENT_TYPE)

    def breaker_or_404(request: Request) -> Any:
        name = request.path_params["name"]
        if name not in registry:
            return None, error_response(404, "unknown_breaker", f"no breaker named {name!r}",
                                        known=registry.names())
        return registry[name], None

    @mcp.custom_route("/admin/breakers", methods=["GET"])
    @admin
    async def list_breakers(request: Request) -> Response:
        extra = describe() if describe is not None else {}
        return JSONResponse(json_safe({**extra, "breakers": registry.status()}))

    @mcp.custom_route("/admin/breakers/{name}", methods=["GET", "PUT", "PATCH"])
    @admin
    async def configure(request: Request) -> Response:
        breaker, missing = breaker_or_404(request)
        if missing is not None:
            return missing
        if request.method == "GET":
            return JSONResponse(json_safe({"breaker": breaker.get_status()}))
        try:
            body = loads_json(await request.body() or b"null")
        except ValueError as exc:
            return error_response(400, "bad_request", f"body is not valid JSON: {exc}")
        if not isinstance(body, dict):
            return error_response(
                422, "invalid_config",
                f"configuration must be a JSON object, got {type(body).__name__}")
        try:
            code = sorted(_CODE_FIELDS & set(body))
            if code:  # never import or call code named by a request
                raise ConfigError(f"{', '.join(code)} cannot be set over HTTP (it is code)")
            if request.method == "PUT":
                config = CircuitBreakerConfig.from_dict(body)
            else:
                config = breaker.config.replace(**body)
        except (ConfigError, ValueError, TypeError) as exc:
            return error_response(422, "invalid_config", str(exc))
        breaker.reconfigure(config)
        return JSONResponse(json_safe({"breaker": breaker.get_status()}))

    @mcp.custom_route("/admin/breakers/{name}/{action}", methods=["POST"])
    @admin
    async def act(request: Request) -> Response:
        breaker, missing = breaker_or_404(request)
        if missing is not None:
            return missing
        action = request.path_params["action"]
        if action not in ACTIONS:
            return error_response(404, "unknown_action", f"no action {action!r}",
                                  known=list(ACTIONS))
        getattr(breaker, action)(f"{action} by admin")
        if after_action is not None:
            after_action(breaker, action)
        return JSONResponse(json_safe({"breaker": breaker.get_status()}))
