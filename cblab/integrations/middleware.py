"""FastMCP middleware: cblab circuit breakers around any server's tools.

    from cblab.integrations import CircuitBreakerMiddleware

    mcp.add_middleware(CircuitBreakerMiddleware(
        config={"failure_threshold": 5, "timeout": 30},
        groups={"search_*": "search-api"},      # these tools share one breaker
        unprotected=["ping"],
        call_timeout=10.0,
    ))

Scope: a breaker per tool by default (named after the tool), so one failing tool
never locks out the others; `groups` puts tools (by name or glob pattern) on a
dependency's breaker; `unprotected` tools bypass breakers.

What each call records (the exception column is `cblab.integrations.classify`'s
table, walked along the `ToolError`'s cause chain; override with `classifier=`):

=============================================  ==================  ===========================
the tool call ends with                        breaker records     the client sees
=============================================  ==================  ===========================
a result                                       success             the result
a result with ``isError`` (business error,     excluded            the result
"no results"); tools in `count_error_results`  (failure)
an ``input_required`` leg (SEP-2322), a task   excluded            the result
submitted by an extension (`outcomes` table)
a ToolError raised on purpose                  excluded            the ToolError
argument validation error                      excluded            the validation error
httpx transport error / timeout, 5xx, 429      failure             the tool's error
(anywhere in the cause chain)
no answer within `call_timeout`                failure             ToolError "... did not
                                               (deadline_exceeded) answer within N s"
breaker refuses                                rejected            isError, structured
                                                                   ``dependency_unavailable``
no bulkhead slot within `max_wait`, or the     nothing (the        isError, structured
event loop lags more than `max_lag`            dependency is not   ``local_overload``
                                               blamed)
no answer within `call_timeout` while the      excluded            isError, structured
event loop was behind (see `bulkhead`)         (local_overload)    ``local_overload``
client went away (cancelled)                   cancelled: frees    -
                                               a half-open slot
=============================================  ==================  ===========================

Bulkhead (`max_concurrent`): at most N calls per breaker in flight; a call waits
at most `max_wait` seconds for a slot *before* the breaker admits it and before
its `call_timeout` starts, so local queueing (say for pooled connections) is
never counted as the dependency failing. It also sheds new calls while the event
loop lags more than `max_lag` seconds, and judges a missed `call_timeout` by the
loop's lag during the call: a deadline missed because this process could not run
the call is local overload, not a dependency failure.

Bad configuration fails early with a `ConfigError` naming the entry: the options
when the middleware is built; tool names and patterns against the server's tools
when the server starts with ``CircuitBreakerMiddleware(...).install(mcp)`` (instead
of ``mcp.add_middleware``), else on the first ``tools/list`` or call, or at once
with ``await middleware.check(mcp)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import math
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from fastmcp.exceptions import ToolError
from fastmcp.server.middleware.tool_injection import ToolInjectionMiddleware
from fastmcp.server.providers import Provider
from fastmcp.tools import Tool, ToolResult

from cblab import BreakerRegistry, CircuitBreaker, CircuitBreakerConfig, ConfigError, Outcome
from cblab._clock import Clock, monotonic

from . import refusal
from ._options import as_config
from .bulkhead import Bulkhead
from .classify import ExceptionClassifier, Verdict, as_verdict, classify_exception
from .fallback import Fallbacks
from .outcomes import result_verdict
from .reconnect import as_trial
from .retry import RetryPolicy, as_policy, idempotent_tool, judge_exception, judge_tool_result
from .retry import tool_names as _tool_names

try:  # which pass of the chain runs (fastmcp 4.2); an "outer" pass never calls a tool
    from fastmcp.server.middleware.middleware import _dispatch_phase
except ImportError:  # pragma: no cover - other fastmcp versions
    _dispatch_phase = None  # type: ignore[assignment]

__all__ = [
    "STATUS_TOOLS",
    "CircuitBreakerMiddleware",
    "json_safe",
    "refusal_result",
    "status_tools",
    "unavailable_result",
]

logger = logging.getLogger(__name__)

#: The opt-in tools (`status_tools=True`).
STATUS_TOOLS = ("circuit_status", "circuit_metrics")

ConfigLike = CircuitBreakerConfig | Mapping[str, Any]
_SUCCESS = Outcome.SUCCESS
_EXCLUDED = Outcome.EXCLUDED
_FAILURE = Outcome.FAILURE
_GLOB = frozenset("*?[")


def _seconds(where: str, value: Any, *, allow_zero: bool = False) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        need = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{where} must be a number of seconds {need}, got {value!r}")
    return float(value)


class _Route:
    """How calls to one tool are protected (resolved once per tool name)."""

    __slots__ = ("breaker", "bulkhead", "timeout", "count_errors")

    def __init__(self, breaker: CircuitBreaker, bulkhead: Bulkhead | None,
                 timeout: float | None, count_errors: bool) -> None:
        self.breaker = breaker
        self.bulkhead = bulkhead
        self.timeout = timeout
        self.count_errors = count_errors


class CircuitBreakerMiddleware(ToolInjectionMiddleware):
    """Protect a FastMCP server's tools with circuit breakers (see the module doc).

    Options (all keyword-only, all validated here):

    `config`: the default `CircuitBreakerConfig` (or its dict, e.g. JSON exported
    from the lab or simulator) for every breaker; `configs`: per breaker name.
    `groups`: ``{tool name or glob: breaker name}``; exact names win over patterns,
    patterns are tried in order. `unprotected`: tool names that bypass breakers.
    `classifier`: ``(exception) -> Verdict | Outcome`` (default: the
    `classify` table). `count_error_results`: tool names whose ``isError`` results
    count as failures. `call_timeout`: seconds, one number or ``{tool: seconds}``.
    `max_concurrent`: bulkhead slots, one number for every breaker or
    ``{breaker: slots}``; `max_wait`: seconds to wait for a slot; `max_lag`: shed
    new calls (local overload) while the event loop lags more than this (seconds);
    `max_waiting`: at most this many calls wait for a slot, more are refused at once.
    `status_tools`: add the `circuit_status` / `circuit_metrics` tools.
    `registry`: use these breakers (a `BreakerRegistry`; one is made otherwise).
    `telemetry`: a `cblab.integrations.otel.BreakerTelemetry` (extra ``cblab[otel]``):
    breaker attributes and events on fastmcp's span, and OpenTelemetry metrics.
    `retry`: a `RetryPolicy` (or True, or a number of attempts) re-running failed calls
    of tools annotated ``readOnlyHint`` or ``idempotentHint`` (`retry_tools`: an
    explicit allow-list instead); each attempt is one breaker call.
    `fallback`: ``{tool: Fallback}`` answers for refused or failed calls, marked in the
    result's meta (see `cblab.integrations.fallback`).
    """

    def __init__(
        self,
        *,
        config: ConfigLike | None = None,
        configs: Mapping[str, ConfigLike] | None = None,
        groups: Mapping[str, str] | None = None,
        unprotected: Iterable[str] = (),
        classifier: ExceptionClassifier | None = None,
        count_error_results: Iterable[str] = (),
        call_timeout: float | Mapping[str, float] | None = None,
        max_concurrent: int | Mapping[str, int] | None = None,
        max_wait: float = 1.0,
        max_lag: float | None = None,
        max_waiting: int | None = None,
        status_tools: bool = False,
        registry: BreakerRegistry | None = None,
        clock: Clock = monotonic,
        telemetry: Any = None,
        retry: RetryPolicy | bool | int | None = None,
        retry_tools: Iterable[str] | None = None,
        fallback: Mapping[str, Any] | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.retry = as_policy("retry", retry)
        self.fallbacks = Fallbacks(fallback, clock=clock, server_side=True)
        self.retry_tools = _tool_names("retry_tools", retry_tools)
        self._retryable: dict[str, bool] = {}
        self.config = CircuitBreakerConfig() if config is None else as_config("config", config)
        configs = {} if configs is None else configs
        if not isinstance(configs, Mapping):
            raise ConfigError(f"configs must map breaker names to configs, got {configs!r}")
        self.configs = {name: as_config(f"configs[{name!r}]", c) for name, c in configs.items()}
        groups = {} if groups is None else groups
        if not isinstance(groups, Mapping):
            raise ConfigError(f"groups must map tool names or patterns to breakers, got {groups!r}")
        for key, target in groups.items():
            if not isinstance(key, str) or not key:
                raise ConfigError(f"groups: keys must be tool names or patterns, got {key!r}")
            if not isinstance(target, str) or not target:
                raise ConfigError(f"groups[{key!r}] must be a breaker name, got {target!r}")
        self.groups = dict(groups)
        self._exact = {k: v for k, v in groups.items() if not (_GLOB & set(k))}
        self._patterns = [(k, v) for k, v in groups.items() if _GLOB & set(k)]
        self.unprotected = _tool_names("unprotected", unprotected) or frozenset()
        grouped_and_free = sorted(self.unprotected & set(self._exact))
        if grouped_and_free:
            raise ConfigError(
                f"tool(s) {', '.join(map(repr, grouped_and_free))} are both in groups and "
                "unprotected: choose one")
        if classifier is not None and not callable(classifier):
            raise ConfigError(f"classifier must be callable, got {classifier!r}")
        self.classifier = classifier if classifier is not None else classify_exception
        self.count_error_results = (
            _tool_names("count_error_results", count_error_results) or frozenset())
        if call_timeout is None or isinstance(call_timeout, Mapping):
            self._timeouts = {
                tool: _seconds(f"call_timeout[{tool!r}]", t)
                for tool, t in (call_timeout or {}).items()}
            self._default_timeout: float | None = None
        else:
            self._timeouts = {}
            self._default_timeout = _seconds("call_timeout", call_timeout)
        self.max_wait = _seconds("max_wait", max_wait, allow_zero=True)
        self.max_lag = None if max_lag is None else _seconds("max_lag", max_lag)
        if max_waiting is not None and (
            isinstance(max_waiting, bool) or not isinstance(max_waiting, int) or max_waiting < 0
        ):
            raise ConfigError(f"max_waiting must be an integer >= 0, got {max_waiting!r}")
        self.max_waiting = max_waiting
        if max_concurrent is None or isinstance(max_concurrent, Mapping):
            self._slots = dict(max_concurrent or {})
            self._default_slots: int | None = None
        else:
            self._slots = {}
            self._default_slots = max_concurrent
        for where, slots in [("max_concurrent", self._default_slots),
                             *((f"max_concurrent[{k!r}]", v) for k, v in self._slots.items())]:
            if slots is not None and (
                isinstance(slots, bool) or not isinstance(slots, int) or slots < 1
            ):
                raise ConfigError(f"{where} must be an integer >= 1, got {slots!r}")
        if registry is not None and not isinstance(registry, BreakerRegistry):
            raise ConfigError(f"registry must be a cblab.BreakerRegistry, got {registry!r}")
        self.registry = registry if registry is not None else BreakerRegistry(clock=clock)
        self.bulkheads: dict[str, Bulkhead] = {}
        self._routes: dict[str, _Route | None] = {}
        self._checked = False
        tools = self._status_tools() if status_tools else []
        super().__init__(tools)
        self._status_names = frozenset(tool.name for tool in tools)

    # --- configuration ------------------------------------------------------------------

    def breaker_for(self, tool: str) -> str | None:
        """The breaker name `tool` goes through (None: unprotected)."""
        if tool in self.unprotected or tool in self._status_names:
            return None
        target = self._exact.get(tool)
        if target is not None:
            return target
        for pattern, target in self._patterns:
            if fnmatch.fnmatchcase(tool, pattern):
                return target
        return tool

    def check_tools(self, tool_names: Iterable[str]) -> None:
        """Raise ConfigError naming every entry that matches none of `tool_names`."""
        tools = set(tool_names)
        problems = []
        for key in self.groups:
            if key in self._exact and key not in tools:
                problems.append(f"groups: no tool named {key!r}")
            elif key not in self._exact and not fnmatch.filter(tools, key):
                problems.append(f"groups: pattern {key!r} matches no tool")
        for where, names in (("unprotected", self.unprotected),
                             ("count_error_results", self.count_error_results),
                             ("call_timeout", set(self._timeouts)),
                             ("fallback", set(self.fallbacks.by_tool))):
            problems += [f"{where}: no tool named {n!r}" for n in sorted(names - tools)]
        breakers = {b for b in map(self.breaker_for, tools) if b is not None}
        for where, names in (("configs", set(self.configs)), ("max_concurrent", set(self._slots))):
            problems += [f"{where}: no breaker named {n!r} (breakers: {sorted(breakers)})"
                         for n in sorted(names - breakers)]
        if problems:
            raise ConfigError("circuit breaker middleware: " + "; ".join(problems)
                              + f" (tools: {sorted(tools)})")
        self._checked = True

    def install(self, server: Any) -> CircuitBreakerMiddleware:
        """`server.add_middleware(self)`, and check tool names when the server starts,
        so a bad mapping stops the server from starting (a ConfigError naming it)."""
        server.add_middleware(self)
        server.add_provider(_StartupCheck(self, server))
        return self

    async def check(self, server: Any) -> None:
        """Check tool names and patterns against `server`'s tools now (ConfigError if bad)."""
        names = [tool.name for tool in await server.list_tools(run_middleware=False)]
        self.check_tools(names)
        for name in names:  # every breaker exists from now on (metrics, admin, status)
            if name not in self._routes:
                self._routes[name] = self._route(name)

    # --- the call path ------------------------------------------------------------------

    def _route(self, tool: str) -> _Route | None:
        name = self.breaker_for(tool)
        if name is None:
            return None
        if name in self.registry:
            breaker = self.registry[name]
        else:
            breaker = self.registry.get(name, self.configs.get(name, self.config))
        bulkhead = self.bulkheads.get(name)
        slots = self._slots.get(name, self._default_slots)
        if bulkhead is None and slots is not None:
            bulkhead = self.bulkheads[name] = Bulkhead(
                name, slots, self.max_wait, max_lag=self.max_lag, max_waiting=self.max_waiting)
        timeout = self._timeouts.get(tool, self._default_timeout)
        if self.telemetry is not None:
            self.telemetry.watch(breaker)
        return _Route(breaker, bulkhead, timeout, tool in self.count_error_results)

    async def _resolve(self, tool: str, context: Any) -> _Route | None:
        server = getattr(context.fastmcp_context, "fastmcp", None)
        if server is None:
            return None
        if not self._checked:
            await self.check(server)
        # Only tools that exist get a breaker: unknown names must not create state.
        if await server.get_tool(tool) is None:
            return None
        route = self._routes[tool] = self._route(tool)
        return route

    async def __call__(self, context: Any, call_next: Any) -> Any:
        if context.method != "tools/call" or (
            _dispatch_phase is not None and _dispatch_phase.get() == "outer"
        ):
            if not self._checked and context.method == "tools/list":
                server = getattr(context.fastmcp_context, "fastmcp", None)
                if server is not None:
                    await self.check(server)
            return await call_next(context)
        tool = context.message.name
        try:
            route = self._routes[tool]
        except KeyError:
            route = await self._resolve(tool, context)
        if route is None:
            return await call_next(context)
        if tool in self.fallbacks.by_tool:
            server = context.fastmcp_context.fastmcp

            async def other(name: str, arguments: Any, **_: Any) -> Any:
                return await server.call_tool(name, arguments)

            return await self.fallbacks.serve(
                tool, context.message.arguments, lambda: self._protected(route, context,
                                                                         call_next), other)
        if route.bulkhead is None and self.retry is None:  # the common path: one frame less
            return await self._call_once(route, context, call_next)
        return await self._protected(route, context, call_next)

    async def _protected(self, route: _Route, context: Any, call_next: Any) -> Any:
        """The call through its bulkhead and breaker (with retries if the tool has them)."""
        tool = context.message.name
        bulkhead = route.bulkhead
        breaker = route.breaker
        # first a local slot (bounded wait), then the breaker
        if bulkhead is not None and not await bulkhead.acquire():
            if self.telemetry is not None:
                self.telemetry.local_overload(breaker)
            return _overload_result(bulkhead, breaker)
        try:
            if self.retry is not None and await self._retries(tool, context):
                return await self._call_retrying(route, context, call_next)
            return await self._call_once(route, context, call_next)
        finally:
            if bulkhead is not None:
                bulkhead.release()

    async def _retries(self, tool: str, context: Any) -> bool:
        known = self._retryable.get(tool)
        if known is None:
            if self.retry_tools is not None:
                known = tool in self.retry_tools
            else:
                server = getattr(context.fastmcp_context, "fastmcp", None)
                found = None if server is None else await server.get_tool(tool)
                known = found is not None and idempotent_tool(found.annotations)
            self._retryable[tool] = known
        return known

    async def _call_retrying(self, route: _Route, context: Any, call_next: Any) -> Any:
        breaker = route.breaker
        policy = self.retry
        assert policy is not None

        def judge(result: Any, error: BaseException | None) -> Any:
            if error is not None:
                return judge_exception(error, self.classifier)
            return judge_tool_result(result, route.count_errors)

        return await policy.call(lambda: self._call_once(route, context, call_next), judge,
                                 key=breaker.name,
                                 breaker_open=lambda: breaker.state.value == "open")

    async def _call_once(self, route: _Route, context: Any, call_next: Any) -> Any:
        """One attempt: one breaker admission, one record."""
        breaker = route.breaker
        permit = await breaker.admit_async()  # a shared store's trial lease is awaited
        if not permit.admitted:
            return refusal_result(*refusal.unavailable(
                breaker.name, permit.state.value, permit.retry_after))
        if permit.trial:  # a dependency client in the tool must reach the real server
            call_next = as_trial(call_next)
        timeout = route.timeout
        bulkhead = route.bulkhead
        try:
            if timeout is None:
                result = await call_next(context)
            else:  # with a bulkhead, extended by the time the event loop was behind
                async with (asyncio.timeout(timeout) if bulkhead is None
                            else bulkhead.deadline(timeout)) as scope:
                    result = await call_next(context)
        except Exception as exc:
            if timeout is not None and isinstance(exc, TimeoutError) and scope.expired():
                if bulkhead is not None and bulkhead.missed_locally(scope):
                    # this process could not run the call in time: not the dependency
                    breaker.record(permit, _EXCLUDED, error_type=refusal.LOCAL_OVERLOAD)
                    if self.telemetry is not None:
                        self.telemetry.local_overload(breaker, recorded=True)
                    return _overload_result(bulkhead, breaker)
                breaker.record(permit, _FAILURE, error_type="deadline_exceeded")
                raise ToolError(
                    f"the {breaker.name} dependency did not answer within {timeout:g} s",
                    log_level=logging.DEBUG,
                ) from exc
            verdict = self._classify(exc)
            breaker.record(permit, verdict.outcome, error_type=verdict.error_type)
            raise
        except BaseException as exc:  # cancelled: frees the slot, counts as nothing
            breaker.record_exception(permit, exc)
            raise
        if result.__class__ is ToolResult and not result.is_error:  # the common case
            breaker.record(permit, _SUCCESS)
        else:  # isError, an input_required leg, a task submitted (see `outcomes`)
            verdict = result_verdict(result, route.count_errors)
            breaker.record(permit, verdict.outcome, error_type=verdict.error_type)
        return result

    def _classify(self, exc: BaseException) -> Verdict:
        try:
            return as_verdict(self.classifier(exc))
        except Exception:  # a broken classifier must not hide the tool's own error
            logger.exception("circuit breaker classifier failed; counting the call as failed")
            return Verdict(_FAILURE, type(exc).__name__)

    # --- status -------------------------------------------------------------------------

    def status(self) -> dict[str, dict[str, Any]]:
        """Every breaker's status by name (with its bulkhead's, when it has one)."""
        status = self.registry.status()
        for name, bulkhead in self.bulkheads.items():
            if name in status:
                status[name]["bulkhead"] = bulkhead.status()
        return status

    def _status_tools(self) -> list[Tool]:
        return status_tools(self.registry, self.status)


class _StartupCheck(Provider):
    """Provides nothing; its lifespan checks the middleware against the server's tools."""

    def __init__(self, middleware: CircuitBreakerMiddleware, server: Any) -> None:
        super().__init__()
        self._middleware = middleware
        self._server = server

    @contextlib.asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        await self._middleware.check(self._server)
        yield


def _overload_result(bulkhead: Bulkhead, breaker: CircuitBreaker) -> ToolResult:
    found = bulkhead.refusal(breaker.name, breaker.state.value)
    return refusal_result(found.message, found.structured())


def refusal_result(text: str, content: dict[str, Any]) -> ToolResult:
    """A refusal (see `cblab.integrations.refusal`) as an `isError` tool result."""
    return ToolResult(content=text, structured_content=content, is_error=True)


def unavailable_result(breaker: str, state: str, retry_after: float) -> ToolResult:
    """The answer while a breaker refuses calls: an `isError` result a model can act on."""
    return refusal_result(*refusal.unavailable(breaker, state, retry_after))


def status_tools(
    registry: BreakerRegistry, status: Callable[[], dict[str, Any]] | None = None
) -> list[Tool]:
    """The `circuit_status` and `circuit_metrics` tools over `registry`'s breakers."""
    annotations: Any = {"readOnlyHint": True, "openWorldHint": False}
    status = status if status is not None else registry.status

    async def circuit_status() -> dict[str, Any]:
        """Get status of all circuit breakers (by name: state, failures, successes, ...)."""
        return json_safe(status())

    async def circuit_metrics() -> dict[str, Any]:
        """Get detailed circuit breaker metrics: every circuit and a summary by state."""
        return json_safe(registry.metrics())

    return [Tool.from_function(fn, annotations=annotations, output_schema=None)
            for fn in (circuit_status, circuit_metrics)]


def json_safe(value: Any) -> Any:
    """Status dicts may hold inf (a forced-open retry_after): JSON has no inf."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value

