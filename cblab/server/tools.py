"""The demo tools: the original write-up's `github_user`, an order lookup, and the
breakers' `circuit_status` / `circuit_metrics`.

Each dependency call goes through its breaker with the non-raising protocol
(`admit`, then `record`), so the tool decides exactly what counts:

==========================================  ==================  =======================
backend answer                              breaker records     the client sees
==========================================  ==================  =======================
200 with a JSON object                      success             the object
404                                         success (*)         ToolError "no such ..."
429, 5xx                                    failure             ToolError naming status
connection refused / reset / bad response   failure             ToolError
no answer within the deadline               failure             ToolError
other status (3xx, 4xx: our bug, not its)   excluded            ToolError
breaker refuses                             rejected            isError result with
                                                                structured content
client went away (cancelled)                cancelled           -
==========================================  ==================  =======================

(*) "not found" is the dependency working correctly, so it must never trip the
breaker: it is recorded as a success and the row's `error_type` says `not_found`.

Every backend call runs under one whole-call deadline (`asyncio.timeout`),
because httpx's read timeout is per chunk and a trickling answer never trips it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from http import HTTPStatus
from typing import Annotated, Any

import httpx
from fastmcp import Context, FastMCP
from fastmcp.exceptions import ToolError
from fastmcp.tools import ToolResult
from pydantic import Field

from cblab import BreakerRegistry, CircuitBreaker, Outcome

from .instrumentation import note_error

__all__ = [
    "MAX_ORDER_ID",
    "TOOL_BREAKERS",
    "check_order_id",
    "check_username",
    "register_tools",
    "Unguarded",
    "unavailable_result",
]

#: Which breaker each dependency-calling tool goes through.
TOOL_BREAKERS = {"github_user": "github", "order_lookup": "database"}

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


def unavailable_result(breaker: str, state: str, retry_after: float) -> ToolResult:
    """The answer while a breaker refuses calls: an `isError` result a model can act on."""
    if math.isinf(retry_after):
        when = "it was forced open by an operator; retry later"
        retry: float | None = None
    else:
        retry = round(retry_after, 3)
        when = f"retry in {retry_after:.1f} s" if retry_after >= 0.05 else "retry now"
    text = (
        f"The {breaker} dependency is temporarily unavailable (circuit breaker "
        f"{state.replace('_', '-')}): {when}."
    )
    return ToolResult(
        content=text,
        structured_content={
            "error": "dependency_unavailable",
            "breaker": breaker,
            "state": state,
            "retry_after_s": retry,
        },
        is_error=True,
    )


class Unguarded:
    """Stands in for a breaker on a `bare` server (the benchmark baseline): admits
    everything and records nothing, so the tool path is the same minus the breaker."""

    __slots__ = ("name",)

    class _Permit:
        __slots__ = ()
        admitted = True

    _permit = _Permit()

    def __init__(self, name: str) -> None:
        self.name = name

    def admit(self) -> Any:
        return self._permit

    def record(self, permit: Any, outcome: Any, **kwargs: Any) -> None:
        return None

    def record_exception(self, permit: Any, exc: BaseException) -> None:
        return None


async def fetch_json(
    breaker: CircuitBreaker | Unguarded,
    http: httpx.AsyncClient,
    url: str,
    *,
    deadline: float,
    not_found: str,
) -> dict[str, Any] | ToolResult:
    """GET `url` through `breaker` under a whole-call `deadline`; see the module table."""
    permit = breaker.admit()
    if not permit.admitted:
        note_error("dependency_unavailable")
        return unavailable_result(breaker.name, permit.state.value, permit.retry_after)
    name = breaker.name
    try:
        async with asyncio.timeout(deadline):
            response = await http.get(url)
    except TimeoutError:
        _failed(breaker, permit, "deadline_exceeded")
        raise _Refusal(f"the {name} dependency did not answer within {deadline:g} s") from None
    except httpx.HTTPError as exc:
        error = type(exc).__name__
        _failed(breaker, permit, error)
        raise _Refusal(f"the {name} dependency is unreachable ({error})") from None
    except BaseException as exc:  # cancelled: neither success nor failure
        breaker.record_exception(permit, exc)
        raise
    status = response.status_code
    if status == 200:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            _failed(breaker, permit, "bad_response")
            raise _Refusal(f"the {name} dependency sent a malformed answer")
        breaker.record(permit, Outcome.SUCCESS)
        return data
    if status == 404:
        breaker.record(permit, Outcome.SUCCESS)  # the dependency works: see module doc
        note_error("not_found")
        raise _Refusal(not_found)
    reason = _reason(status)
    if status == 429 or status >= 500:
        _failed(breaker, permit, f"http_{status}")
        hint = response.headers.get("retry-after")
        extra = f"; it asks to retry after {hint} s" if hint and hint.isdigit() else ""
        raise _Refusal(f"the {name} dependency failed: HTTP {status} {reason}{extra}")
    breaker.record(permit, Outcome.EXCLUDED, error_type=f"http_{status}")
    note_error(f"http_{status}")
    raise _Refusal(f"unexpected answer from the {name} dependency: HTTP {status} {reason}")


def _failed(breaker: CircuitBreaker | Unguarded, permit: Any, error_type: str) -> None:
    breaker.record(permit, Outcome.FAILURE, error_type=error_type)
    note_error(error_type)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def register_tools(
    mcp: FastMCP,
    registry: BreakerRegistry,
    *,
    users_url: str | None,
    orders_url: str | None,
    deadline: float,
    guarded: bool = True,
) -> None:
    """Add the four tools to `mcp`. Backend URLs are bases such as `http://127.0.0.1:8001`.

    `guarded=False` calls the backend without the breakers (the `bare` baseline).
    """
    github: CircuitBreaker | Unguarded = registry["github"] if guarded else Unguarded("github")
    database: CircuitBreaker | Unguarded = (
        registry["database"] if guarded else Unguarded("database"))
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
        return await fetch_json(  # type: ignore[return-value]
            github, ctx.lifespan_context["http"], f"{users_base}/users/{username}",
            deadline=deadline, not_found=f"no such user {username!r}",
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
        return await fetch_json(  # type: ignore[return-value]
            database, ctx.lifespan_context["http"], f"{orders_base}/orders/{order_id}",
            deadline=deadline, not_found=f"no such order {order_id}",
        )

    @mcp.tool(annotations={"readOnlyHint": True, "openWorldHint": False}, output_schema=None)
    async def circuit_status() -> dict[str, Any]:
        """Get status of all circuit breakers (by name: state, failures, successes, ...)."""
        return registry.status()

    @mcp.tool(annotations={"readOnlyHint": True, "openWorldHint": False}, output_schema=None)
    async def circuit_metrics() -> dict[str, Any]:
        """Get detailed circuit breaker metrics: every circuit and a summary by state."""
        return registry.metrics()
