"""The demo tools: the original write-up's `github_user` and an order lookup, protected
by `cblab.integrations.CircuitBreakerMiddleware` (the same middleware anyone can add to
their own server; `circuit_status` / `circuit_metrics` are its opt-in tools).

The tools only call the backend and say what went wrong; the middleware admits,
times and records each call through the tool's breaker (`TOOL_BREAKERS`), with
the demo's classifier (`demo_classifier`: the middleware's table, plus "not found"
counted as the dependency working):

==========================================  ==================  =======================
backend answer                              breaker records     the client sees
==========================================  ==================  =======================
200 with a JSON object                      success             the object
404                                         success (*)         ToolError "no such ..."
429, 5xx                                    failure             ToolError naming status
connection refused / reset / bad response   failure             ToolError
no answer within the deadline               failure             ToolError
other status (3xx, 4xx: our bug, not its)   excluded            ToolError
invalid argument                            excluded            ToolError saying why
breaker refuses                             rejected            isError result with
                                                                structured content
no local slot within the deadline           nothing (dropped)   isError result,
(more calls in flight than connections),                        ``local_overload``
or as many calls already waiting for one,
or the event loop lags more than `max_lag`
an answer in time that waited for the       success             the object
event loop (deadline extended by the lag)
deadline ran out while the event loop was   excluded            isError result,
still behind (this process was too slow)    (local_overload)    ``local_overload``
client went away (cancelled)                cancelled           -
==========================================  ==================  =======================

(*) "not found" is the dependency working correctly, so it must never trip the
breaker: it is recorded as a success and the row's `error_type` says `not_found`.

Every backend call runs under one whole-call deadline (the middleware's
`call_timeout`), because httpx's read timeout is per chunk and a trickling answer
never trips it. The deadline starts once the call has a local slot (the
middleware's bulkhead, as many slots per dependency as the HTTP client has
connections), so waiting for a pooled connection never counts as the backend failing.
The deadline is measured in time this process could run (`cblab.integrations.looplag`):
a server saturated by its own sessions sheds new calls and never blames a healthy
backend for answers its event loop was too busy to read.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Annotated, Any

import httpx
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from pydantic import Field

from cblab import Outcome
from cblab.codes import NOT_FOUND
from cblab.demo import TOOL_BREAKERS
from cblab.integrations.classify import DependencyError, Verdict, classify_exception
from cblab.integrations.middleware import unavailable_result

from .instrumentation import note_error

__all__ = [
    "MAX_ORDER_ID",
    "TOOL_BREAKERS",
    "check_order_id",
    "check_username",
    "demo_classifier",
    "register_tools",
    "unavailable_result",
]

#: Order ids are positive and at most this (a 32-bit signed integer, like the table's key).
MAX_ORDER_ID = 2**31 - 1

# GitHub's rules: 1-39 characters, letters, digits and single hyphens, no hyphen
# at either end.
_USERNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")


class _Refusal(ToolError):
    """An expected tool error (bad argument, failing dependency): logged at DEBUG,
    not ERROR, so a lab run that trips breakers on purpose keeps a clean log."""

    def __init__(self, message: str) -> None:
        super().__init__(message, log_level=logging.DEBUG)


def check_username(username: Any) -> str:
    """Return `username` if GitHub would accept it, else raise a ToolError saying why."""
    if not isinstance(username, str):
        raise _Refusal(f"username must be a string, got {type(username).__name__}")
    shown = username if len(username) <= 60 else username[:57] + "..."
    if not 1 <= len(username) <= 39:
        raise _Refusal(
            f"invalid username {shown!r}: must be 1 to 39 characters, got {len(username)}"
        )
    if _USERNAME.fullmatch(username) is None:
        raise _Refusal(
            f"invalid username {shown!r}: only letters, digits and single hyphens are "
            "allowed, and it cannot start or end with a hyphen"
        )
    return username


def check_order_id(order_id: Any) -> int:
    """Return `order_id` if it is an integer in 1..MAX_ORDER_ID, else raise a ToolError."""
    if isinstance(order_id, bool) or not isinstance(order_id, int):
        raise _Refusal(f"order_id must be an integer, got {order_id!r}")
    if not 1 <= order_id <= MAX_ORDER_ID:
        raise _Refusal(f"order_id must be between 1 and {MAX_ORDER_ID}, got {order_id}")
    return order_id


class NotFound(_Refusal):
    """The backend answered "no such thing": an error for the caller, a success for the breaker."""


def demo_classifier(exc: BaseException) -> Verdict:
    """The middleware's default table, plus `NotFound` counted as the dependency working."""
    if isinstance(exc, NotFound):
        return Verdict(Outcome.SUCCESS, NOT_FOUND)
    return classify_exception(exc)


async def fetch_json(
    http: httpx.AsyncClient, url: str, *, dependency: str, not_found: str
) -> dict[str, Any]:
    """GET `url`; the object, or a ToolError whose cause chain says how it counts."""
    try:
        response = await http.get(url)
    except httpx.HTTPError as exc:
        raise _Refusal(
            f"the {dependency} dependency is unreachable ({type(exc).__name__})") from exc
    status = response.status_code
    if status == 200:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise _Refusal(f"the {dependency} dependency sent a malformed answer") from (
                DependencyError("not a JSON object", "bad_response"))
        return data
    if status == 404:
        raise NotFound(not_found)  # the dependency works: see module doc
    reason = _reason(status)
    failed = httpx.HTTPStatusError(f"HTTP {status}", request=response.request, response=response)
    if status == 429 or status >= 500:
        hint = response.headers.get("retry-after")
        extra = f"; it asks to retry after {hint} s" if hint and hint.isdigit() else ""
        raise _Refusal(
            f"the {dependency} dependency failed: HTTP {status} {reason}{extra}") from failed
    raise _Refusal(
        f"unexpected answer from the {dependency} dependency: HTTP {status} {reason}") from failed


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def register_tools(mcp: FastMCP, *, users_url: str | None, orders_url: str | None) -> None:
    """Add the two backend tools to `mcp`. URLs are bases such as `http://127.0.0.1:8001`.

    The breakers, deadline and bulkhead come from the server's middleware.
    """
    users_base = users_url.rstrip("/") if users_url else None
    orders_base = orders_url.rstrip("/") if orders_url else None
    read_only = {"readOnlyHint": True, "idempotentHint": True, "openWorldHint": True}
    # No output schemas: the results are the backend's JSON objects, so a schema
    # would only say "object", and it makes every fastmcp client validate each
    # result with jsonschema (whose import alone takes seconds).

    @mcp.tool(annotations=read_only, output_schema=None)
    async def github_user(
        username: Annotated[str, Field(description="GitHub login, e.g. octocat")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Get GitHub user information with circuit breaker protection.

        When the breaker is open the result is an error with
        `{"error": "dependency_unavailable", "retry_after_s": ...}`.
        """
        try:
            check_username(username)
        except ToolError:
            note_error("invalid_argument")
            raise
        if users_base is None:
            raise _Refusal("no users backend is configured on this server")
        return await fetch_json(
            ctx.lifespan_context["http"], f"{users_base}/users/{username}",
            dependency=TOOL_BREAKERS["github_user"], not_found=f"no such user {username!r}",
        )

    @mcp.tool(annotations=read_only, output_schema=None)
    async def order_lookup(
        order_id: Annotated[int, Field(description=f"Order id, 1 to {MAX_ORDER_ID}")],
        ctx: Context,
    ) -> dict[str, Any]:
        """Look up one order in the orders database, with circuit breaker protection."""
        try:
            check_order_id(order_id)
        except ToolError:
            note_error("invalid_argument")
            raise
        if orders_base is None:
            raise _Refusal("no orders backend is configured on this server")
        return await fetch_json(
            ctx.lifespan_context["http"], f"{orders_base}/orders/{order_id}",
            dependency=TOOL_BREAKERS["order_lookup"], not_found=f"no such order {order_id}",
        )
