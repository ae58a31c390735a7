"""Build the demo FastMCP server, and serve it over HTTP from inside a running loop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.lifespan import lifespan
from fastmcp.server.middleware import Middleware
from fastmcp.server.middleware.tool_injection import ToolInjectionMiddleware

import cblab
from cblab import BreakerRegistry, CircuitBreakerConfig, ConfigError, EventLog, monotonic
from cblab.demo import BREAKER_DEFAULTS, BREAKERS, DATABASE, GITHUB, TOOL_BREAKERS
from cblab.integrations.middleware import CircuitBreakerMiddleware, status_tools

from .admin import register_routes
from .instrumentation import Instrumentation, ToolCallRecorder
from .listener import Limits, ListenerStats, uvicorn_options
from .tools import demo_classifier, register_tools

__all__ = [
    "MCP_PATH",
    "LabServer",
    "ServerRunner",
    "ServerSettings",
    "build_server",
    "http_url",
    "lab_of",
]

MCP_PATH = "/mcp"


def _github_default() -> CircuitBreakerConfig:
    return CircuitBreakerConfig.from_dict(dict(BREAKER_DEFAULTS[GITHUB]))  # the write-up's numbers


def _database_default() -> CircuitBreakerConfig:
    return CircuitBreakerConfig.from_dict(dict(BREAKER_DEFAULTS[DATABASE]))


def _check_url(name: str, url: Any) -> None:
    if url is None:
        return
    if not isinstance(url, str):
        raise ConfigError(f"{name} must be a URL string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL such as http://127.0.0.1:8001, got {url!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not have a query or fragment, got {url!r}")


@dataclass(frozen=True)
class ServerSettings:
    """Everything `build_server` needs. Validated on construction (ConfigError names the field).

    `github` / `database` accept a `CircuitBreakerConfig` or a dict for
    `CircuitBreakerConfig.from_dict`. `protected=False` builds the "unprotected"
    variant: the same breakers, disabled (metrics only, they never refuse a call).
    `deadline` is the whole-call limit for each backend request, in seconds; it
    starts once the call has one of `max_connections` slots for its dependency
    (a call waits at most `deadline` for a slot, then is refused as local overload;
    at most `max_connections` calls wait, more are refused at once). While the event
    loop lags more than `max_lag` seconds new calls are refused as local overload,
    and a call's deadline is extended by the time the loop was behind during it
    (`cblab.integrations.bulkhead`): a busy server sheds its own load instead of
    blaming a healthy dependency.
    `bare=True` is the benchmark baseline: tools call the backend with neither
    breakers nor instrumentation (no event rows, breakers untouched).
    Without an `admin_token` the admin routes answer 403.
    """

    users_url: str | None = None
    orders_url: str | None = None
    github: CircuitBreakerConfig = field(default_factory=_github_default)
    database: CircuitBreakerConfig = field(default_factory=_database_default)
    protected: bool = True
    deadline: float = 2.0
    admin_token: str | None = None
    event_log_capacity: int = 50_000
    variant: str | None = None
    max_connections: int = 100
    name: str = "resilient-mcp"
    bare: bool = False
    replica: str | None = None  # this replica's name; rows are labelled "variant@replica"
    max_lag: float | None = 0.25  # shed new calls while the event loop lags this much (s)

    def __post_init__(self) -> None:
        _check_url("users_url", self.users_url)
        _check_url("orders_url", self.orders_url)
        for name in BREAKERS:
            value = getattr(self, name)
            if isinstance(value, dict):
                try:
                    value = CircuitBreakerConfig.from_dict(value)
                except ConfigError as exc:
                    raise ConfigError(f"{name}: {exc}") from None
                object.__setattr__(self, name, value)
            elif not isinstance(value, CircuitBreakerConfig):
                raise ConfigError(f"{name} must be a CircuitBreakerConfig or a dict, got {value!r}")
        for name in ("protected", "bare"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be True or False, got {getattr(self, name)!r}")
        deadline = self.deadline
        if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not (
            math.isfinite(deadline) and deadline > 0
        ):
            raise ConfigError(f"deadline must be a positive number of seconds, got {deadline!r}")
        lag = self.max_lag
        if lag is not None and (isinstance(lag, bool) or not isinstance(lag, int | float) or not (
            math.isfinite(lag) and lag > 0
        )):
            raise ConfigError(f"max_lag must be a positive number of seconds or None, got {lag!r}")
        for name in ("event_log_capacity", "max_connections"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
        if self.admin_token is not None and (
            not isinstance(self.admin_token, str) or len(self.admin_token) < 8
        ):
            raise ConfigError("admin_token must be a string of at least 8 characters")
        if self.variant is not None and (not isinstance(self.variant, str) or not self.variant):
            raise ConfigError(f"variant must be a non-empty string, got {self.variant!r}")
        if self.replica is not None and (
            not isinstance(self.replica, str) or not self.replica or "@" in self.replica
        ):
            raise ConfigError(f"replica must be a non-empty string without '@', got {self.replica!r}")

    @property
    def variant_label(self) -> str:
        if self.variant:
            label = self.variant
        elif self.bare:
            label = "bare"
        else:
            label = "protected" if self.protected else "unprotected"
        return f"{label}@{self.replica}" if self.replica else label

    def replace(self, **changes: Any) -> ServerSettings:
        return dataclasses.replace(self, **changes)


@dataclass
class LabServer:
    """The parts of a built server that tests, the CLI and the routes share."""

    settings: ServerSettings
    registry: BreakerRegistry
    instrumentation: Instrumentation
    mcp: FastMCP = field(repr=False)


def lab_of(mcp: FastMCP) -> LabServer:
    """The `LabServer` behind a FastMCP app made by `build_server`."""
    lab = getattr(mcp, "_cblab_lab", None)
    if lab is None:
        raise TypeError("this FastMCP app was not made by cblab.server.build_server")
    return lab


def build_server(
    settings: ServerSettings | None = None, *, clock: Any = monotonic, store: Any = None
) -> FastMCP:
    """The demo server: tools behind breakers, instrumentation, custom routes.

    `store`: where the breakers keep their state (default: in memory); a connected
    `cblab.stores.RedisStore` shares it with the other replicas (`cblab serve
    --shared-state URL`).
    """
    settings = settings if settings is not None else ServerSettings()
    if store is not None and not settings.protected:
        raise ConfigError("an unprotected server cannot share breaker state: disabling "
                          "its breakers would disable them for every replica")
    registry = BreakerRegistry(clock=clock, event_log=EventLog(10_000), store=store)
    instr = Instrumentation(
        variant=settings.variant_label, capacity=settings.event_log_capacity, clock=clock
    )
    for name in BREAKERS:
        breaker = registry.get(name, getattr(settings, name))
        instr.attach(breaker)
        if not settings.protected:
            breaker.disable("unprotected mode: metrics only")

    # One pool for both dependencies, with a connection for every slot of the
    # middleware's bulkheads: a call that has a slot never waits for a connection.
    pool = settings.max_connections * len(TOOL_BREAKERS)

    @lifespan
    async def http_client(server: FastMCP) -> AsyncIterator[dict[str, Any]]:
        limits = httpx.Limits(
            max_connections=pool, max_keepalive_connections=min(pool, 100),
        )
        if settings.bare:  # no middleware deadline: httpx's per-chunk limits stand in
            timeout = httpx.Timeout(settings.deadline)
        else:  # the deadline is the middleware's call_timeout; this is a backstop
            timeout = httpx.Timeout(
                settings.deadline + 5.0, connect=min(settings.deadline, 5.0) + 1.0)
        async with httpx.AsyncClient(
            limits=limits, timeout=timeout, trust_env=False, follow_redirects=False,
            headers={"user-agent": "cblab-demo-server"},
        ) as client:
            yield {"http": client}

    breakers = {tool: registry[name] for tool, name in TOOL_BREAKERS.items()}
    middleware: list[Middleware]
    if settings.bare:  # the baseline: no breakers, no rows, only the status tools
        middleware = [ToolInjectionMiddleware(status_tools(registry))]
    else:
        protection = CircuitBreakerMiddleware(
            registry=registry, groups=TOOL_BREAKERS, classifier=demo_classifier,
            call_timeout=settings.deadline, max_concurrent=settings.max_connections,
            max_wait=settings.deadline, max_lag=settings.max_lag,
            max_waiting=settings.max_connections, status_tools=True,
        )
        instr.bulkheads = protection.bulkheads  # the same dict: filled as tools are first used
        middleware = [ToolCallRecorder(instr, breakers), protection]
    mcp = FastMCP(
        settings.name,
        version=cblab.__version__,  # serverInfo.version: the package's, as the docs say
        instructions=(
            "Demo MCP server for the cblab circuit-breaker lab: GitHub-style users and "
            "orders behind circuit breakers."
        ),
        lifespan=http_client,
        middleware=middleware,
        mask_error_details=True,
    )
    register_tools(mcp, users_url=settings.users_url, orders_url=settings.orders_url)
    lab = LabServer(settings, registry, instr, mcp)
    if store is not None:
        from .replicas import watch_shared_state

        watch_shared_state(lab, store)
    register_routes(mcp, lab)
    mcp._cblab_lab = lab  # type: ignore[attr-defined]
    return mcp


def http_url(host: str, port: int) -> str:
    """The base URL of a listener (an IPv6 literal goes in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal capture: in a Jupyter kernel SIGINT belongs to the
    kernel, and the CLI installs its own handlers."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ServerRunner:
    """Serve a FastMCP app over Streamable HTTP with uvicorn inside the running loop.

    For a Jupyter kernel (which has a running loop) and for the CLI::

        runner = await ServerRunner(build_server(settings)).start()
        runner.mcp_url  # http://127.0.0.1:PORT/mcp
        await runner.stop()

    Binds the socket itself, so `port=0` gives an ephemeral port known before
    serving. Host/Origin protection is on ("auto": a loopback server refuses a
    foreign Host with 421 and a foreign Origin with 403). `limits` bound what
    clients can hold (header and idle timeouts, a connection cap; default
    `cblab.server.listener.DEFAULT_LISTENER_LIMITS`).
    """

    def __init__(
        self,
        mcp: FastMCP,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = MCP_PATH,
        log_level: str = "warning",
        graceful_shutdown_s: float = 2.0,
        limits: Limits | None = None,
    ) -> None:
        self.mcp = mcp
        self.host = host
        self.path = path
        self._requested_port = port
        self._log_level = log_level
        self._graceful = graceful_shutdown_s
        self._limits = limits
        self.listener_stats: ListenerStats | None = None
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server is not started")
        return http_url(self.host, self.port)

    @property
    def mcp_url(self) -> str:
        return self.url + self.path

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        # proto must say TCP: asyncio sets TCP_NODELAY on accepted connections only
        # when it does, and without it Nagle + delayed ACKs add ~40 ms per response.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self._requested_port))
        except OSError:
            sock.close()
            raise
        sock.set_inheritable(True)
        return sock

    async def start(self, timeout: float = 30.0) -> ServerRunner:
        if self._task is not None:
            raise RuntimeError("already started")
        self._socket = self._bind()
        self.port = self._socket.getsockname()[1]
        app = self.mcp.http_app(path=self.path, host_origin_protection="auto")
        # header/idle timeouts and a connection cap (cblab.server.listener)
        limited, self.listener_stats = uvicorn_options(self._limits)
        config = uvicorn.Config(
            app, lifespan="on", log_level=self._log_level, access_log=False,
            timeout_graceful_shutdown=math.ceil(self._graceful), ws="none", **limited,
        )
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._serve(), name=f"cblab-server-{self.port}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception()
                self._task = None
                raise RuntimeError(f"the server failed to start: {exc!r}") from exc
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError(f"the server did not start within {timeout:g} s")
            await asyncio.sleep(0.005)
        return self

    async def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            await self._server.serve(sockets=[self._socket])
        except SystemExit as exc:  # uvicorn exits on lifespan startup failure
            raise RuntimeError(f"uvicorn exited with {exc.code}") from None
        finally:
            self._socket.close()

    def request_stop(self) -> None:
        """Ask the server to stop (thread-unsafe; call on the loop). Returns at once."""
        if self._server is not None:
            self._server.should_exit = True

    async def wait(self) -> None:
        """Until the server stops."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def stop(self) -> None:
        """Stop serving and run the app's shutdown (closes the httpx client). Idempotent."""
        task, self._task = self._task, None
        if task is None:
            return
        self.request_stop()
        try:
            await task
        except Exception:
            pass

    async def __aenter__(self) -> ServerRunner:
        return await self.start()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.stop()
