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

`/events`, `/metrics` and the admin routes are `cblab.integrations.mount_routes` (the
piece any server can mount) with the demo's hooks: schema rows for `/events`, the
instrumented `/metrics`, variant and shared state in `GET /admin/breakers`.
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

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from cblab import CircuitBreaker
from cblab.integrations.routes import ACTIONS, MAX_EVENTS_LIMIT, mount_routes

from . import metrics

if TYPE_CHECKING:
    from fastmcp import FastMCP

    from .app import LabServer

__all__ = ["ACTIONS", "MAX_EVENTS_LIMIT", "register_routes", "render_metrics_text"]


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

    def describe() -> dict[str, Any]:
        return {"variant": settings.variant_label, "protected": settings.protected,
                **_shared_state(instr)}

    def after_action(breaker: CircuitBreaker, action: str) -> None:
        if action == "reset" and not settings.protected:  # stay what the variant claims
            breaker.disable("unprotected mode: metrics only")

    mount_routes(
        mcp, registry, admin_token=settings.admin_token, events=instr.rows,
        metrics=lambda: metrics.render(registry, instr), describe=describe,
        after_action=after_action,
    )


def render_metrics_text(lab: LabServer) -> str:
    """The same text `/metrics` serves (handy in-process)."""
    return metrics.render(lab.registry, lab.instrumentation)
