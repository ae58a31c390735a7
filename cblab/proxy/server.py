"""`FaultProxy`: a fault-injecting MCP proxy in front of any MCP server.

::

    async with FaultProxy("http://127.0.0.1:8000/mcp", seed=1) as proxy:
        proxy.mcp_url          # point your MCP client here
        await proxy.set_fault("*", {"error_rate": 0.3, "error_as": "jsonrpc"})
        await proxy.set_fault("*", {"mode": "down"})   # connections refused, for real

Two loopback listeners: the MCP endpoint (`cblab.proxy.gateway`, Streamable HTTP,
with Host/Origin protection) and the control API (`cblab.proxy.control`), which
keeps answering while the MCP listener is down. Everything is forwarded as the
upstream wrote it (an HTTP upstream at the transport level, `cblab.proxy.httplink`;
a stdio one message for message, `cblab.proxy.stdiolink`); only tool calls get
faults. The upstream may go away and come back: `health` says how it is
(`cblab.proxy.health`). The control token exists only on the control listener:
nothing the proxy sends upstream carries it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from cblab.backend.http import HttpServer
from cblab.faults.profile import ProfileError
from cblab.faults.scenario import ScenarioError
from cblab.server.app import http_url

from .faults import FaultTable, ToolFault
from .gateway import Gateway, ProxyHostGuard
from .health import UpstreamHealth
from .inject import FaultInjector, ProxyEvents
from .scenario import ProxyScenario
from .upstream import ProxyError, Upstream

#: The default bound on one answer from the upstream (`max_result_bytes`).
MAX_RESULT_BYTES = 16 * 1024 * 1024

__all__ = ["FaultProxy", "warm_up"]

log = logging.getLogger("cblab.proxy")
_warm = False


async def warm_up() -> None:
    """Pay fastmcp's one-off first-call cost (lazy imports, schema building: seconds on
    a busy 2-core machine) on a throwaway in-process server, once per process, so the
    first call a client makes through the proxy is not the one that pays it."""
    global _warm
    if _warm:
        return
    from fastmcp import Client, FastMCP

    server = FastMCP("cblab-warm-up")

    @server.tool
    def ping() -> str:
        return "pong"

    async with Client(server) as client:
        await client.call_tool("ping", {})
    _warm = True


class FaultProxy:
    """The proxy: `await start()` (or `async with`), then steer faults.

    upstream      an MCP URL, a stdio command line (string or list), or an `Upstream`
    port          the MCP listener's port (0: ephemeral); `control_port` likewise
    seed          seeds one RNG per tool (`rng_for(seed, tool)`); None: from the OS
    token         bearer token for the control API (None: no token, loopback only)
    scenario      a scenario to play from the start (name, path or `ProxyScenario`)
    allowed_hosts, allowed_origins   more Host names / Origins both listeners accept
    connect_timeout    how long the upstream may take to answer at start (a stdio
                  server starting its interpreter on a busy machine takes seconds)
    max_result_bytes   the largest answer taken from the upstream; a larger one is
                  answered with a JSON-RPC error "result too large"
    """

    def __init__(
        self,
        upstream: str | Sequence[str] | Upstream,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        control_port: int = 0,
        seed: int | str | None = 1,
        token: str | None = None,
        scenario: str | Path | ProxyScenario | None = None,
        time_scale: float = 1.0,
        connect_timeout: float = 60.0,
        events_capacity: int = 100_000,
        allowed_hosts: Sequence[str] = (),
        allowed_origins: Sequence[str] = (),
        max_result_bytes: int = MAX_RESULT_BYTES,
    ) -> None:
        if isinstance(max_result_bytes, bool) or not isinstance(max_result_bytes, int) \
                or max_result_bytes < 1024:
            raise ProxyError(f"max_result_bytes must be an integer >= 1024, got {max_result_bytes!r}")
        self.upstream = Upstream.parse(upstream)
        self.host = host
        self.seed = seed
        self._requested_port = port
        self._control_port = control_port
        self._token = token
        self._initial_scenario = scenario
        self._time_scale = time_scale
        self._connect_timeout = connect_timeout
        self._events_capacity = events_capacity
        self._allowed_hosts = tuple(allowed_hosts)
        self._allowed_origins = tuple(allowed_origins)
        self.max_result_bytes = max_result_bytes
        self.health = UpstreamHealth()
        self._link: Any = None
        self.tools: list[str] = []
        self.port: int | None = None
        self.control_port: int | None = None
        self.table = FaultTable(seed)
        self.events: ProxyEvents | None = None
        self.injector: FaultInjector | None = None
        self._runner: Any = None
        self._control: HttpServer | None = None
        self._lock = asyncio.Lock()
        self._scenario: ProxyScenario | None = None
        self._scenario_task: asyncio.Task[None] | None = None
        self._scenario_started = 0.0
        self._phase_index = 0

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> FaultProxy:
        if self._control is not None:
            raise RuntimeError("proxy already started")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _start(self) -> None:
        from .control import ProxyControl

        self._link = self.upstream.link(self.health, max_result_bytes=self.max_result_bytes,
                                        control_token=self._token,
                                        connect_timeout=self._connect_timeout)
        self.tools = await self.upstream.start_link(self._link, self._connect_timeout)
        self.table.tools = self.tools
        self.events = ProxyEvents(self._events_capacity)
        self.injector = FaultInjector(self.table, self.events, self.phase_name)
        await self._open_listener()
        self._control = HttpServer(ProxyControl(self, self._token, self._guard()).handle)
        self.control_port = await self._control.listen(self.host, self._control_port)
        if self._initial_scenario is not None:
            await self.play(self._initial_scenario, self._time_scale)

    def _guard(self) -> ProxyHostGuard:
        return ProxyHostGuard(self.host, self._allowed_hosts, self._allowed_origins)

    def _learn_tools(self, names: list[str], whole: bool) -> None:
        """A listing passed through: faults may target what the upstream has now."""
        tools = names if whole else list(dict.fromkeys([*self.tools, *names]))
        if tools != self.tools:
            self.tools = tools[:10_000]
            self.table.tools = self.tools

    async def stop(self) -> None:
        """Stop playback and both listeners; calls still held end as resets."""
        await self.stop_scenario(restore_healthy=False)
        if self.injector is not None:
            self.injector.abort_hung()
        await self._close_listener()
        if self._control is not None:
            await self._control.stop()
            self._control = None
        link, self._link = self._link, None
        if link is not None:
            with contextlib.suppress(Exception):
                await link.stop()

    async def __aenter__(self) -> FaultProxy:
        return await self.start()

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # --- the MCP listener (closed while "down") ---------------------------------------

    async def _open_listener(self) -> None:
        from cblab.server.app import ServerRunner

        assert self.injector is not None
        gateway = Gateway(self._link, self.injector, self._guard(), self._learn_tools)
        # the demo server's runner (its socket, limits and shutdown) serving the gateway
        runner = ServerRunner(cast(Any, _App(gateway)), host=self.host,
                              port=self.port or self._requested_port, graceful_shutdown_s=0.5)
        try:
            await runner.start()
        except OSError as exc:
            raise ProxyError(f"cannot listen on {self.host}:{self.port or self._requested_port}: "
                             f"{exc.strerror or exc}") from None
        self._runner = runner
        self.port = runner.port

    async def _close_listener(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.stop()

    @property
    def upstream_pid(self) -> int | None:
        """The stdio server's process id (None for an HTTP upstream, or while respawning)."""
        return getattr(self._link, "pid", None)

    @property
    def listening(self) -> bool:
        return self._runner is not None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the proxy is not started")
        return http_url(self.host, self.port)

    @property
    def mcp_url(self) -> str:
        return self.url + "/mcp"

    @property
    def control_url(self) -> str:
        if self.control_port is None:
            raise RuntimeError("the proxy is not started")
        return http_url(self.host, self.control_port)

    # --- faults -----------------------------------------------------------------------

    def faults(self) -> dict[str, dict[str, Any]]:
        """Every target with a fault of its own (``"*"`` always), as JSON."""
        return {target: fault.to_dict() for target, fault in self.table.overrides().items()}

    async def set_fault(self, target: str, fault: ToolFault | Mapping[str, Any]) -> ToolFault:
        """Replace a target's fault (``"*"`` or a tool name; a dict is validated)."""
        async with self._lock:
            before = self._modes()
            fault = self.table.set(target, fault)
            await self._after_change(before)
            return fault

    async def patch_fault(self, target: str, patch: Mapping[str, Any]) -> ToolFault:
        """Merge `patch` into the target's current fault (see `FaultProfile.merged`)."""
        async with self._lock:
            before = self._modes()
            fault = self.table.patch(target, patch)
            await self._after_change(before)
            return fault

    async def clear_fault(self, target: str | None = None) -> None:
        """A tool back to following ``"*"``; ``"*"`` back to healthy; None: everything."""
        async with self._lock:
            before = self._modes()
            self.table.clear(target)
            await self._after_change(before)

    async def _apply(self, faults: Mapping[str, ToolFault]) -> None:
        async with self._lock:
            before = self._modes()
            self.table.replace(faults)
            await self._after_change(before)

    def _modes(self) -> dict[str, str]:
        return {target: f.profile.mode for target, f in self.table.overrides().items()}

    async def _after_change(self, before: Mapping[str, str]) -> None:
        assert self.injector is not None
        if "hang" in before.values():
            self.injector.release_hung()
        if self.table.down and self._runner is not None:
            self.injector.abort_hung()
            await self._close_listener()
            log.info("proxy down: %s refuses connections", self.url)
        elif not self.table.down and self._runner is None and self._control is not None:
            await self._open_listener()
            log.info("proxy up again on %s", self.url)

    # --- scenarios --------------------------------------------------------------------

    async def play(self, scenario: str | Path | ProxyScenario | Mapping[str, Any],
                   time_scale: float = 1.0, services: Mapping[str, str] | None = None) -> None:
        """Play a scenario (shipped name, file, dict or object); replaces any in progress."""
        if isinstance(scenario, Mapping):
            scenario = ProxyScenario.from_dict(scenario, services)
        elif not isinstance(scenario, ProxyScenario):
            scenario = ProxyScenario.load(scenario, services)
        if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not (
            0 < time_scale < float("inf")
        ):
            raise ScenarioError(f"time_scale must be a finite number > 0, got {time_scale!r}")
        for target in scenario.tools():
            try:
                self.table.check_name(target)
            except LookupError as exc:
                raise ScenarioError(f"scenario {scenario.name!r}: {exc.args[0]}") from None
        await self.stop_scenario(restore_healthy=False)
        loop = asyncio.get_running_loop()
        self._scenario, self._time_scale = scenario, float(time_scale)
        self._scenario_started = loop.time()
        self._phase_index = 0
        await self._apply(scenario.phases[0].faults)
        self._scenario_task = loop.create_task(self._play(), name=f"cblab-proxy-{scenario.name}")

    async def _play(self) -> None:
        scenario = self._scenario
        assert scenario is not None
        loop = asyncio.get_running_loop()
        offset = 0.0
        for index, phase in enumerate(scenario.phases[:-1]):
            offset += phase.duration_s * self._time_scale
            await asyncio.sleep(max(0.0, self._scenario_started + offset - loop.time()))
            self._phase_index = index + 1
            try:
                await self._apply(scenario.phases[index + 1].faults)
            except (OSError, ProxyError, ProfileError) as exc:
                log.error("scenario %s, phase %d: %s", scenario.name, index + 1, exc)
        end = self._scenario_started + scenario.total_duration_s * self._time_scale
        await asyncio.sleep(max(0.0, end - loop.time()))

    async def stop_scenario(self, *, restore_healthy: bool = True) -> None:
        task, self._scenario_task = self._scenario_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._scenario = None
        if restore_healthy and self.injector is not None:
            await self.clear_fault(None)

    async def wait_scenario(self) -> None:
        if self._scenario_task is not None:
            await asyncio.wait([self._scenario_task])

    def phase_name(self) -> str | None:
        if self._scenario is None:
            return None
        return self._scenario.phases[self._phase_index].name

    def scenario_status(self) -> dict[str, Any]:
        scenario = self._scenario
        if scenario is None:
            return {"running": False, "finished": False, "name": None}
        task = self._scenario_task
        elapsed = asyncio.get_running_loop().time() - self._scenario_started
        return {
            "running": task is not None and not task.done(),
            "finished": task is not None and task.done(),
            "name": scenario.name,
            "description": scenario.description,
            "time_scale": self._time_scale,
            "phase_index": self._phase_index,
            "phase_name": scenario.phases[self._phase_index].name,
            "phase_count": len(scenario.phases),
            "elapsed_s": elapsed,
            "total_duration_s": scenario.total_duration_s * self._time_scale,
            "ignored_services": list(scenario.ignored),
        }

    # --- what the proxy saw -----------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        assert self.events is not None and self.injector is not None
        return {"listening": self.listening, "held": self.injector.hung,
                "upstream": self.health.to_dict(), "tools": self.events.stats()}


class _App:
    """What `ServerRunner` asks of a server: its ASGI app."""

    def __init__(self, app: Gateway) -> None:
        self.app = app

    def http_app(self, **_: Any) -> Gateway:
        return self.app
