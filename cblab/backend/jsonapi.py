"""What the backend's and the proxy's control APIs share: routing, guard, auth, errors.

A `JsonApi` holds a route table (path pattern -> {method: handler}) and answers a
request in a fixed order: a foreign Host/Origin is refused (`guard`), an unknown
method is 405 with ``Allow``, every route but the public one (GET /health) needs
``Authorization: Bearer <token>`` when a token is set (compared in constant time),
then the handler runs and the exceptions it raises become ``{"error": message}``
with the status the owner's error table gives (first matching row wins).
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import unquote

from .guard import HostGuard
from .http import Connection, HttpError, Request, Response, json_response

__all__ = [
    "ErrorRow", "Invalid", "JsonApi", "Route", "body_object", "error", "scenario_fields",
    "scenario_name", "time_scale_field",
]

Route = Callable[[Request, dict[str, str]], Awaitable[Response]]
# (exception types, status, message template with {} for str(exc))
ErrorRow = tuple[type[Exception] | tuple[type[Exception], ...], int, str]


def error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    return json_response(status, {"error": message}, headers)


class Invalid(Exception):
    """Bad input in a well-formed request: answered 422."""


def body_object(request: Request) -> dict[str, Any]:
    data = request.json()  # HttpError 400 on invalid JSON
    if not isinstance(data, dict):
        raise Invalid(f"request body must be a JSON object, got {type(data).__name__}")
    return data


def scenario_fields(body: dict[str, Any], known: Sequence[str]) -> None:
    """Check a POST /scenario body: only `known` fields, exactly one of name/scenario."""
    unknown = sorted(set(body) - set(known))
    if unknown:
        raise Invalid(f"unknown field {unknown[0]!r}; known fields: {', '.join(known)}")
    if ("name" in body) == ("scenario" in body):
        raise Invalid("give exactly one of 'name' (a shipped scenario) or 'scenario' "
                      "(an inline scenario object)")


def scenario_name(body: dict[str, Any]) -> str:
    name = body["name"]
    if not isinstance(name, str):
        raise Invalid(f"name must be a string, got {name!r}")
    return name


def time_scale_field(body: dict[str, Any]) -> float:
    time_scale = body.get("time_scale", 1.0)
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not (
        math.isfinite(time_scale) and time_scale > 0
    ):
        raise Invalid(f"time_scale must be a finite number > 0, got {time_scale!r}")
    return time_scale


class JsonApi:
    """Route table + guard + bearer auth + error mapping (subclasses add the routes)."""

    def __init__(self, token: str | None, guard: HostGuard | None, errors: Sequence[ErrorRow],
                 *, unquote_params: bool = False) -> None:
        self._guard = guard if guard is not None else HostGuard("127.0.0.1")
        self._token = token.encode() if token else None
        self._errors = tuple(errors)
        self._unquote = unquote_params
        self._routes: list[tuple[re.Pattern[str], dict[str, Route]]] = []

    async def _health(self, request: Request, params: dict[str, str]) -> Response:
        raise NotImplementedError  # the one route that needs no token

    async def handle(self, request: Request, conn: Connection) -> Response:
        refusal = self._guard.refusal(request.headers)
        if refusal is not None:
            return error(*refusal)
        path = request.path.rstrip("/") or "/"
        for pattern, methods in self._routes:
            match = pattern.match(path)
            if match is None:
                continue
            route = methods.get(request.method)
            if route is None:
                allow = ", ".join(methods)
                return error(405, f"{request.method} not allowed on {path}; allowed: {allow}",
                             [("Allow", allow)])
            if route != self._health and not self._authorized(request):
                return error(401, "missing or invalid bearer token",
                             [("WWW-Authenticate", "Bearer")])
            params = match.groupdict()
            if self._unquote:
                params = {key: unquote(value) for key, value in params.items()}
            try:
                return await route(request, params)
            except Exception as exc:
                return self._failure(exc)
        return error(404, f"no route for {request.method} {path}")

    def _failure(self, exc: Exception) -> Response:
        if isinstance(exc, HttpError):
            return error(exc.status, exc.message)
        for types, status, template in self._errors:
            if isinstance(exc, types):
                return error(status, template.format(exc))
        raise exc

    def _authorized(self, request: Request) -> bool:
        if self._token is None:
            return True
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            credentials.strip().encode(), self._token
        )
