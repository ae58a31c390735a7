"""The live lab against any MCP server: a fault proxy in front, a client guard before it.

    LiveLab(target="http://127.0.0.1:8000/mcp", tool="get_forecast",
            arguments={"city": "Oslo"})
    LiveLab(target="python my_server.py", tool=..., arguments=...)   # stdio

`ProxyTarget` is a `cblab.lab.target.LabTarget` (the interface the live session
drives). What runs, all on loopback::

    load generator -> guard hop -> fault proxy -> your server
                      (breaker)    (faults)

- the **fault proxy** (`cblab.proxy.FaultProxy`) in front of the target: the fault
  sliders move its faults (on every tool, ``"*"``; injected errors as JSON-RPC
  errors by default, which the guard counts as failures);
- the **guard hop**: a small MCP server in the lab's process whose tool calls go
  through cblab's client guard (`cblab.integrations.GuardedClient`, one breaker
  named as the session's breaker, a whole-call deadline) to the proxy. The breaker
  sliders change the guard's config; its calls and state changes are logged as
  the server's schema rows (`cblab.server.instrumentation`), so the session's
  charts read them like the demo server's. The hop exists because the session's
  load generator runs in a child process and needs an MCP URL to call.

A variant named ``unprotected...`` gets a hop whose breaker is disabled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from fastmcp.server.middleware import Middleware, MiddlewareContext

from .. import CircuitBreakerConfig, monotonic

__all__ = ["ProxyTarget"]


def _reconnecting_client(url: str) -> Any:
    """A fastmcp `Client` (what the guard wraps) whose `call_tool` opens a new session
    when the last one died: a fastmcp session does not survive its server going away,
    and the fault proxy's "down" does exactly that. Connecting while the proxy is down
    fails fast (connection refused), inside the breaker's call: a failure."""
    from fastmcp import Client

    class ReconnectingClient(Client):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(url)
            self._inner: Client | None = None
            self._lock = asyncio.Lock()

        async def __aenter__(self) -> ReconnectingClient:
            return self

        async def __aexit__(self, *exc_info: Any) -> None:
            await self._drop()

        async def _drop(self) -> None:
            inner, self._inner = self._inner, None
            if inner is not None:
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await inner.__aexit__(None, None, None)

        async def _session(self) -> Client:
            if self._inner is None or not self._inner.is_connected():
                async with self._lock:
                    if self._inner is None or not self._inner.is_connected():
                        await self._drop()
                        fresh = Client(url)
                        await fresh.__aenter__()
                        await fresh.list_tools()  # lets it check structured results
                        self._inner = fresh
            assert self._inner is not None
            return self._inner

        async def call_tool(self, name: str, arguments: dict[str, Any] | None = None,
                            **kwargs: Any) -> Any:
            return await (await self._session()).call_tool(name, arguments, **kwargs)

    return ReconnectingClient()


class _ViaGuard(Middleware):
    """Tool calls go through the guard (and its breaker) instead of the plain proxy."""

    def __init__(self, guard: Any, deadline: float) -> None:
        self.guard = guard
        self.deadline = deadline

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        from fastmcp.tools import ToolResult

        message = context.message
        result = await self.guard.call_tool(message.name, message.arguments or {},
                                            timeout=self.deadline, raise_on_error=False)
        return ToolResult(content=result.content, structured_content=result.structured_content,
                          is_error=result.is_error)


class _GuardHop:
    """One variant's guard: an MCP server on loopback, a breaker, schema rows."""

    def __init__(self, upstream_url: str, variant: str, breaker: str,
                 config: CircuitBreakerConfig, *, protected: bool, deadline: float) -> None:
        self.upstream_url = upstream_url
        self.variant = variant
        self.breaker_name = breaker
        self.config = config
        self.protected = protected
        self.deadline = deadline
        self._stack = contextlib.AsyncExitStack()
        self.runner: Any = None
        self.breaker: Any = None
        self.instrumentation: Any = None

    async def start(self, tools: Sequence[str]) -> None:
        from fastmcp import Client
        from fastmcp.server import create_proxy

        from ..integrations import GuardedClient
        from ..server.app import ServerRunner
        from ..server.instrumentation import Instrumentation, ToolCallRecorder

        guard = GuardedClient(_reconnecting_client(self.upstream_url), per="server", name=self.breaker_name,
                              config=self.config, on_open="result")
        await self._stack.enter_async_context(guard)
        self.breaker = guard.breaker(tools[0] if tools else "*")
        if not self.protected:
            self.breaker.disable("unprotected run")
        instr = Instrumentation(variant=self.variant, capacity=100_000, clock=monotonic)
        instr.attach(self.breaker)
        self.instrumentation = instr
        # its own session for listing tools: one shared with the guard hangs the first call
        lister = Client(self.upstream_url)
        await self._stack.enter_async_context(lister)
        # fastmcp logs at INFO (into a notebook's output) that the connected client is
        # shared: that is the intent here (calls go through the guard, not this session)
        proxy_log = logging.getLogger("fastmcp.server.providers.proxy")
        level = proxy_log.level
        proxy_log.setLevel(logging.WARNING)
        try:
            mcp = create_proxy(lister, name=f"cblab-guard-{self.variant}")
        finally:
            proxy_log.setLevel(level)
        mcp.add_middleware(ToolCallRecorder(instr, dict.fromkeys(tools, self.breaker)))
        mcp.add_middleware(_ViaGuard(guard, self.deadline))
        self.runner = await ServerRunner(mcp).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.stop()
            self.runner = None
        with contextlib.suppress(Exception):
            await self._stack.aclose()


class _ProxyFaults:
    """`FaultControl` over the fault proxy: every service name maps to one target."""

    def __init__(self, owner: ProxyTarget) -> None:
        self._owner = owner

    def _fault(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        return {"error_as": self._owner.error_as, **fields}

    async def set_faults(self, service: str, **profile: Any) -> Any:
        proxy = self._owner.proxy
        fault = await proxy.set_fault(self._owner.fault_target, self._fault(profile))
        return fault.to_dict()

    async def patch_faults(self, service: str, **fields: Any) -> Any:
        fault = await self._owner.proxy.patch_fault(self._owner.fault_target,
                                                    self._fault(fields))
        return fault.to_dict()

    async def play_scenario(self, spec: Mapping[str, Any]) -> Any:
        owner = self._owner
        await owner.proxy.play(dict(spec), services={owner.service: owner.fault_target})
        return owner.proxy.scenario_status()


class ProxyTarget:
    """`LabTarget` for any MCP server (see the module docstring).

    target      the server: a Streamable HTTP URL or a stdio command line
    tool        the tool the load calls (checked against the server's tools at start)
    variants    one guard hop each; ``unprotected...`` ones have the breaker disabled
    faults_on   ``"*"`` (every tool, default) or one tool name: where the sliders act
    error_as    how injected errors reach the guard: ``"jsonrpc"`` (default, counted
                as failures) or ``"is_error"`` (a business error: not counted)
    """

    def __init__(self, target: str | Sequence[str], tool: str, *,
                 variants: Sequence[str] = ("protected",), seed: int | str | None = 1,
                 deadline: float = 2.0, faults_on: str = "*", error_as: str = "jsonrpc",
                 service: str = "users") -> None:
        from ..proxy import ERROR_AS, Upstream

        if error_as not in ERROR_AS:
            raise ValueError(f"error_as must be one of {', '.join(ERROR_AS)}, got {error_as!r}")
        if not isinstance(tool, str) or not tool:
            raise ValueError(f"tool must be a tool name, got {tool!r}")
        self.upstream = Upstream.parse(target)
        self.tool = tool
        self._variants = list(variants)
        self.seed = seed
        self.deadline = float(deadline)
        self.fault_target = faults_on
        self.error_as = error_as
        self.service = service
        self.proxy: Any = None
        self.hops: dict[str, _GuardHop] = {}

    @property
    def variants(self) -> list[str]:
        return self._variants

    @property
    def faults(self) -> _ProxyFaults:
        if self.proxy is None:
            raise RuntimeError("the target is not started yet")
        return _ProxyFaults(self)

    def protected(self, variant: str) -> bool:
        return not variant.startswith("unprotected")

    async def start(self, breaker: str, config: Mapping[str, Any]) -> None:
        from ..proxy import FaultProxy, ProxyError

        proxy = FaultProxy(self.upstream, seed=self.seed)
        await proxy.start()
        self.proxy = proxy
        try:
            if self.tool not in proxy.tools:
                raise ProxyError(f"the server at {self.upstream.describe()} has no tool "
                                 f"{self.tool!r}; its tools: {', '.join(proxy.tools) or 'none'}")
            proxy.table.check_name(self.fault_target)
            conf = config if isinstance(config, CircuitBreakerConfig) else \
                CircuitBreakerConfig.from_dict(dict(config))
            for variant in self._variants:
                hop = _GuardHop(proxy.mcp_url, variant, breaker, conf,
                                protected=self.protected(variant), deadline=self.deadline)
                self.hops[variant] = hop
                await hop.start(proxy.tools)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        hops, self.hops = list(self.hops.values()), {}
        for hop in hops:
            await hop.stop()
        if self.proxy is not None:
            await self.proxy.stop()

    def mcp_target(self, variant: str) -> str:
        return self.hops[variant].runner.mcp_url  # type: ignore[no-any-return]

    async def events(self, variant: str, after: int, limit: int | None) -> Mapping[str, Any]:
        await asyncio.sleep(0)
        return self.hops[variant].instrumentation.rows(after, limit)  # type: ignore[no-any-return]

    async def configure_breaker(self, variant: str, breaker: str, **fields: Any) -> Any:
        target = self.hops[variant].breaker
        target.reconfigure(target.config.replace(**fields))  # ConfigError names the field
        return target.get_status()

    def proxy_events(self, after: int = 0, limit: int | None = None) -> Mapping[str, Any]:
        """The fault proxy's rows (``source="proxy"``): the calls that reached it."""
        return self.proxy.events.rows(after, limit)  # type: ignore[no-any-return]
