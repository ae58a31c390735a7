"""A circuit-breaker guard around `fastmcp.Client`, for agents that call MCP servers.

    from cblab.integrations import GuardedClient

    async with GuardedClient(Client("http://127.0.0.1:8000/mcp"),
                             config={"failure_threshold": 3, "timeout": 30}) as client:
        result = await client.call_tool("search", {"q": "breakers"})

A breaker per tool by default (named ``<server>/<tool>``), so one failing tool
never locks the agent out of the others, including the one it needs to recover;
``per="server"`` uses one breaker for the whole server. While a breaker refuses,
`call_tool` raises `cblab.CircuitOpenError` without touching the network (or, with
``on_open="result"``, returns an `isError` result carrying the refusal's
structured content). Everything else (`list_tools`, ...) passes straight through.

===========================================  ===============  ============================
the call ends with                           breaker records  the caller gets
===========================================  ===============  ============================
a result                                     success          the result
an ``isError`` result (ToolError when        excluded         as from fastmcp
`raise_on_error`), unless the tool is in     (failure)
`count_error_results`; also a task-required
tool called without task support
connection refused / closed (server down:    failure          the exception
``connection_closed``), a stale session
(``session_terminated``), transport errors,
request timeouts (-32001), internal server
errors (-32603), other server errors in
-32000..-32019 (``server_error``)
a JSON-RPC error standing for an HTTP        429/5xx:         the exception
status (``data.status``, or 429 / "too many  failure; other
requests" in the message): ``http_<code>``   statuses:
                                             excluded
the response stream broke mid-call           failure          the exception
(``stream_broken``: the call may have run)
past `deadline` (``deadline_exceeded``)      failure          TimeoutError
more input rounds than the client allows     excluded         the exception
(``input_required``)
other JSON-RPC errors (invalid params,       excluded         the exception
unknown method: the request was wrong)
anything else                                the `classify`   the exception
                                             table (unknown
                                             exceptions fail)
breaker refuses                              rejected         CircuitOpenError, or a
                                                              refusal result
cancelled                                    cancelled        -
===========================================  ===============  ============================

Restarts: the client is held through a `ReconnectingClient`, so a session that died
(server killed, restarted, a stdio server crashed) is reopened before the next call,
and before a half-open trial unless it answered since its last failure (see
`cblab.integrations.reconnect`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from fastmcp import Client
from fastmcp.client.client import CallToolResult
from fastmcp.exceptions import ToolError
from mcp_types import TextContent

from cblab import (
    BreakerRegistry,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    ConfigError,
    Outcome,
)
from cblab._clock import Clock, monotonic

from . import refusal
from ._options import as_config
from .classify import (
    ExceptionClassifier,
    Verdict,
    as_verdict,
    classify_exception,
    classify_mcp_error,
)
from .fallback import Fallbacks
from .reconnect import ReconnectingClient
from .retry import RetryPolicy, as_policy, idempotent_tool, judge_exception, judge_tool_result
from .retry import tool_names as _tool_names

__all__ = ["GuardedClient", "classify_client_exception"]

try:
    from mcp.client._input_required import InputRequiredRoundsExceededError as _ROUNDS_EXCEEDED
except ImportError:  # pragma: no cover - other mcp versions
    _ROUNDS_EXCEEDED = None  # type: ignore[assignment,misc]


_NO_DEADLINE = contextlib.nullcontext()


def classify_client_exception(exc: BaseException) -> Verdict:
    """The client side's table: MCP errors by code (`classify_mcp_error`), then the
    `classify` table; a server asking for input past the client's rounds is no outage."""
    verdict = classify_mcp_error(exc)
    if verdict is not None:
        return verdict
    if _ROUNDS_EXCEEDED is not None and isinstance(exc, _ROUNDS_EXCEEDED):
        return Verdict(Outcome.EXCLUDED, "input_required")
    return classify_exception(exc)


class GuardedClient:
    """Wrap a `fastmcp.Client` so `call_tool` goes through breakers (see the module doc).

    `per`: ``"tool"`` (default) or ``"server"``; `name`: the server's name in breaker
    names (default: the client's transport as text). `config` / `configs`: the
    default `CircuitBreakerConfig` (or its dict) and per breaker name.
    `count_error_results`: tool names whose ``isError`` results count as failures.
    `on_open`: ``"raise"`` (CircuitOpenError) or ``"result"`` (an isError result).
    `classifier`: ``(exception) -> Verdict | Outcome``.
    `telemetry`: a `cblab.integrations.otel.BreakerTelemetry` (extra ``cblab[otel]``):
    each call gets a CLIENT span carrying its breaker's attributes and events.
    `retry`: a `RetryPolicy` (or True, or a number of attempts): re-issue failed calls
    of tools whose annotations say ``readOnlyHint`` or ``idempotentHint``;
    `retry_tools`: the tools to re-issue instead (an explicit allow-list).
    `fallback`: ``{tool: Fallback}`` answers for refused or failed calls (see
    `cblab.integrations.fallback`).
    `deadline`: seconds one `call_tool` may take in all (a reconnect, the call, a task
    or input rounds the client resolves inside it); past it the call fails with
    TimeoutError, recorded as ``deadline_exceeded``. Default: none (the client's own
    request timeout still applies to each request).
    """

    def __init__(
        self,
        client: Client | ReconnectingClient,
        *,
        per: Literal["tool", "server"] = "tool",
        name: str | None = None,
        config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
        configs: Mapping[str, CircuitBreakerConfig | Mapping[str, Any]] | None = None,
        count_error_results: Iterable[str] = (),
        on_open: Literal["raise", "result"] = "raise",
        classifier: ExceptionClassifier = classify_client_exception,
        deadline: float | None = None,
        registry: BreakerRegistry | None = None,
        clock: Clock = monotonic,
        telemetry: Any = None,
        retry: RetryPolicy | bool | int | None = None,
        retry_tools: Iterable[str] | None = None,
        fallback: Mapping[str, Any] | None = None,
    ) -> None:
        self.telemetry = telemetry
        if deadline is not None and (isinstance(deadline, bool) or not isinstance(
                deadline, int | float) or not 0 < deadline < float("inf")):
            raise ConfigError(f"deadline must be seconds > 0, got {deadline!r}")
        self.deadline = None if deadline is None else float(deadline)
        if isinstance(client, ReconnectingClient):
            self.connection = client
        elif isinstance(client, Client):
            self.connection = ReconnectingClient(client)
        else:
            raise ConfigError(f"client must be a fastmcp.Client, got {client!r}")
        client = self.connection.client
        if per not in ("tool", "server"):
            raise ConfigError(f"per must be 'tool' or 'server', got {per!r}")
        if on_open not in ("raise", "result"):
            raise ConfigError(f"on_open must be 'raise' or 'result', got {on_open!r}")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"name must be a non-empty string, got {name!r}")
        if not callable(classifier):
            raise ConfigError(f"classifier must be callable, got {classifier!r}")
        if isinstance(count_error_results, str):
            raise ConfigError("count_error_results must be a list of tool names, "
                              f"got {count_error_results!r}")
        self.client = client
        self.per = per
        self.name = name if name is not None else str(client.transport)
        self.config = CircuitBreakerConfig() if config is None else as_config("config", config)
        self.configs = {k: as_config(f"configs[{k!r}]", v) for k, v in (configs or {}).items()}
        self.count_error_results = frozenset(count_error_results)
        self.on_open = on_open
        self.classifier = classifier
        self.registry = registry if registry is not None else BreakerRegistry(clock=clock)
        self._breakers: dict[str, Any] = {}
        self.retry = as_policy("retry", retry)
        self.retry_tools = _tool_names("retry_tools", retry_tools)
        self.fallbacks = Fallbacks(fallback, clock=clock)
        self._idempotent: dict[str, bool] | None = None

    def breaker_name(self, tool: str) -> str:
        return self.name if self.per == "server" else f"{self.name}/{tool}"

    def breaker(self, tool: str) -> Any:
        breaker = self._breakers.get(tool)
        if breaker is None:
            name = self.breaker_name(tool)
            breaker = self.registry[name] if name in self.registry else self.registry.get(
                name, self.configs.get(name, self.config))
            self._breakers[tool] = breaker
            if self.telemetry is not None:
                self.telemetry.watch(breaker)
        return breaker

    async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                        **kwargs: Any) -> CallToolResult:
        """`Client.call_tool` through the tool's breaker (same arguments and result),
        re-issued by the `retry` policy when the tool is safe to repeat; a declared
        fallback answers a refused or failed call."""
        if self.telemetry is not None:
            with self.telemetry.guard_span(self.client, name):
                return await self._call_tool(name, arguments, **kwargs)
        if self.retry is None and not self.fallbacks:  # the plain path: one attempt, no layers
            return await self._call_once(name, arguments, **kwargs)
        return await self._call_tool(name, arguments, **kwargs)

    async def _call_tool(self, name: str, arguments: dict[str, Any] | None,
                         **kwargs: Any) -> CallToolResult:
        if self.fallbacks:
            return await self.fallbacks.serve(
                name, arguments, lambda: self._call_retrying(name, arguments, **kwargs),
                self.client.call_tool)
        return await self._call_retrying(name, arguments, **kwargs)

    async def retryable(self, name: str) -> bool:
        """Whether failed calls of tool `name` are re-issued (allow-list, else annotations)."""
        if self.retry is None:
            return False
        if self.retry_tools is not None:
            return name in self.retry_tools
        if self._idempotent is None or name not in self._idempotent:
            try:  # through the reconnecting client: the session may have died
                tools = await self.connection.request("list_tools")
            except Exception:  # server away: decide next time; the call meets the breaker
                return False
            self._idempotent = {t.name: idempotent_tool(t.annotations) for t in tools}
        return self._idempotent.get(name, False)

    async def _call_retrying(self, name: str, arguments: dict[str, Any] | None,
                             **kwargs: Any) -> CallToolResult:
        policy = self.retry
        if policy is None or not await self.retryable(name):
            return await self._call_once(name, arguments, **kwargs)
        breaker = self.breaker(name)
        counts_errors = name in self.count_error_results
        raise_on_error = kwargs.pop("raise_on_error", True)

        def judge(result: Any, error: BaseException | None) -> Any:
            if error is not None:
                return judge_exception(error, self.classifier)
            return judge_tool_result(result, counts_errors)

        # Attempts keep isError results (a refusal is told apart by its structured
        # content); the last one is raised as fastmcp would have.
        result = await policy.call(
            lambda: self._call_once(name, arguments, raise_on_error=False, **kwargs), judge,
            key=breaker.name, breaker_open=lambda: breaker.state.value == "open")
        if result.is_error and raise_on_error:
            text = next((c.text for c in result.content if isinstance(c, TextContent)), "")
            raise ToolError(text)
        return result

    async def _call_once(self, name: str, arguments: dict[str, Any] | None,
                         **kwargs: Any) -> CallToolResult:
        """One attempt: one breaker admission, one record."""
        breaker = self.breaker(name)
        permit = breaker.admit()
        if not permit.admitted:
            if self.on_open == "result":
                text, content = refusal.unavailable(
                    breaker.name, permit.state.value, permit.retry_after)
                return CallToolResult(content=[TextContent(type="text", text=text)],
                                      structured_content=content, meta=None, is_error=True)
            raise CircuitOpenError(breaker.name, permit.retry_after, permit.state)
        counts_errors = name in self.count_error_results
        connection = self.connection
        try:
            # A half-open trial must reach the real server: reopen a session that died
            # (or may have) while the breaker was open; a reconnect that fails is this
            # call failing.
            scope = None if self.deadline is None else asyncio.timeout(self.deadline)
            async with scope or _NO_DEADLINE:  # asyncio.timeout costs ~10 µs: only if asked
                await connection.ensure(trial=permit.state is CircuitState.HALF_OPEN)
                result = await self.client.call_tool(name, arguments, **kwargs)
        except ToolError:  # an isError result, raised because raise_on_error is on
            connection.note_success()
            if counts_errors:
                breaker.record(permit, Outcome.FAILURE, error_type="error_result")
            else:
                breaker.record(permit, Outcome.EXCLUDED, error_type="tool_error")
            raise
        except Exception as exc:
            connection.note_failure(exc)
            if scope is not None and isinstance(exc, TimeoutError) and scope.expired():
                verdict = Verdict(Outcome.FAILURE, "deadline_exceeded")
            else:
                try:
                    verdict = as_verdict(self.classifier(exc))
                except Exception:
                    verdict = Verdict(Outcome.FAILURE, type(exc).__name__)
            breaker.record(permit, verdict.outcome, error_type=verdict.error_type)
            raise
        except BaseException as exc:  # cancelled: frees a half-open slot, counts as nothing
            breaker.record_exception(permit, exc)
            raise
        connection.note_success()
        if result.is_error:
            if counts_errors:
                breaker.record(permit, Outcome.FAILURE, error_type="error_result")
            else:
                breaker.record(permit, Outcome.EXCLUDED, error_type="tool_error")
        else:
            breaker.record(permit, Outcome.SUCCESS)
        return result

    # --- status, events, metrics ----------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Every breaker's status, by name."""
        return self.registry.status()

    def metrics(self) -> dict[str, Any]:
        """`{"circuits": [...], "summary": {"total", "open", "closed", "half_open"}}`."""
        return self.registry.metrics()

    def events(self, after: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Calls and state changes since sequence number `after`, oldest first."""
        part = self.registry.event_log.since(after, limit)
        return [{"seq": seq, **event.to_dict()} for seq, event in part.events]

    # --- the rest of the client ---------------------------------------------------------

    async def __aenter__(self) -> GuardedClient:
        await self.connection.connect()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.connection.close()

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.connection, attribute)  # requests reconnect too
