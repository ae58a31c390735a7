"""`cblab serve`: run the demo MCP server over Streamable HTTP (default) or stdio.

Without `--backend-users` / `--backend-orders` it starts its own in-process
backend (`cblab.backend.Backend`) on ephemeral loopback ports, so `cblab serve`
works on its own. Prints the MCP URL; `--ready-file` gets
`{"url", "mcp_url", "pid", "variant", "protected", "backend": {...}}` as JSON
once the server answers. `--exit-with-parent PID` stops the server when that
process dies (used by `cblab.stack.Stack` so children die with a Jupyter kernel).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import sys
from pathlib import Path
from typing import Any

from cblab.demo import BREAKER_DEFAULTS, DATABASE, GITHUB

TOKEN_ENV = "CBLAB_ADMIN_TOKEN"
#: /events keeps up to twice this many rows in memory (about 1 KB each).
MAX_EVENT_CAPACITY = 1_000_000
#: Connections per dependency: each is a descriptor.
MAX_DEPENDENCY_SLOTS = 10_000

__all__ = ["TOKEN_ENV", "breaker_configs", "build_parser", "main", "settings_from_args"]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cblab serve",
        description="Run the instrumented FastMCP demo server (tools behind circuit breakers).",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port; 0 = ephemeral (default: %(default)s)")
    p.add_argument("--transport", choices=("http", "stdio"), default="http",
                   help="MCP over Streamable HTTP (default) or stdio")
    p.add_argument("--backend-users", metavar="URL", help="users service base URL")
    p.add_argument("--backend-orders", metavar="URL", help="orders service base URL")
    p.add_argument("--backend-ready-file", type=Path, metavar="PATH",
                   help="wait for a `cblab backend --ready-file` JSON and use its URLs "
                        "(lets a launcher start server and backend at the same time)")
    p.add_argument("--seed", type=int, default=1,
                   help="seed of the in-process backend, when no backend URLs are given")
    p.add_argument("--unprotected", action="store_true",
                   help="disable the breakers (metrics only): the comparison baseline")
    p.add_argument("--bare", action="store_true",
                   help="no breakers and no instrumentation: the benchmark baseline")
    p.add_argument("--variant", help="label for event rows (default: protected/unprotected)")
    p.add_argument("--admin-token", default=None,
                   help=f"bearer token for /admin routes (default: ${TOKEN_ENV}; none = admin off)")
    p.add_argument("--deadline", type=float, default=2.0,
                   help="whole-call deadline for each backend request, seconds (default: 2)")
    p.add_argument("--max-connections", type=int, default=100,
                   help="concurrent calls (and HTTP connections) per dependency; more wait "
                        "up to the deadline for a slot, then are refused as local_overload "
                        "(default: 100)")
    p.add_argument("--max-lag", type=float, default=0.25, metavar="S",
                   help="refuse new calls as local_overload while the event loop runs this "
                        "many seconds behind (sustained); 0 = never (default: 0.25)")
    p.add_argument("--failure-threshold", type=int,
                   help="failure_threshold for both breakers (overrides per-breaker defaults)")
    p.add_argument("--breaker-timeout", type=float,
                   help="open timeout in seconds for both breakers")
    for name, defaults in BREAKER_DEFAULTS.items():
        p.add_argument(f"--{name}-failure-threshold", type=int,
                       help=f"{name} breaker failure_threshold "
                            f"(default: {defaults['failure_threshold']})")
        p.add_argument(f"--{name}-timeout", type=float,
                       help=f"{name} breaker open timeout, seconds "
                            f"(default: {defaults['timeout']:g})")
        p.add_argument(f"--{name}-config", metavar="JSON",
                       help=f"{name} breaker config as JSON (CircuitBreakerConfig.from_dict); "
                            "the flags above apply on top")
    p.add_argument("--shared-state", metavar="URL",
                   help="share breaker state with the other replicas through Redis, e.g. "
                        "redis://127.0.0.1:6379/0 (needs cblab[redis])")
    p.add_argument("--shared-namespace", default="cblab-demo", metavar="NAME",
                   help="key namespace of the shared breakers (default: %(default)s)")
    p.add_argument("--replica", metavar="NAME",
                   help="this replica's name: event rows say variant@NAME")
    p.add_argument("--store-timeout", type=float, default=0.05, metavar="S",
                   help="deadline of each shared-state operation, seconds (default: 0.05)")
    listener = p.add_argument_group(
        "listener limits", "bounds on what HTTP clients can hold on the MCP port")
    listener.add_argument("--header-timeout", type=float, default=10.0, metavar="S",
                          help="a request must arrive complete within S seconds of the "
                               "connection (or of its first byte); default: %(default)s")
    listener.add_argument("--idle-timeout", type=float, default=30.0, metavar="S",
                          help="close a kept-alive connection idle for S seconds "
                               "(default: %(default)s)")
    listener.add_argument("--max-open-connections", type=int, default=None, metavar="N",
                          help="open client connections before new ones get 503 (default: "
                               "half the descriptor limit, less a reserve)")
    p.add_argument("--otel", choices=("console", "otlp"), default=None,
                   help="report the breakers to OpenTelemetry (attributes and events on each "
                        "tools/call span, resilience.circuit_breaker.* metrics): console "
                        "prints them, otlp sends them to $OTEL_EXPORTER_OTLP_ENDPOINT "
                        "(needs cblab[otel]; otlp also opentelemetry-exporter-otlp-proto-http)")
    p.add_argument("--event-capacity", type=int, default=50_000,
                   help="rows kept by /events (default: %(default)s)")
    p.add_argument("--ready-file", type=Path, help="write URLs and pid here as JSON when ready")
    p.add_argument("--exit-with-parent", type=int, metavar="PID",
                   help="exit when process PID is no longer our parent")
    p.add_argument("--log-level", default="warning",
                   choices=("critical", "error", "warning", "info", "debug"),
                   help="the server's log level (default: warning)")
    return p


def breaker_configs(args: argparse.Namespace) -> dict[str, Any]:
    """The two breakers' configs from the flags (core only: fails fast, before fastmcp loads)."""
    from cblab import CircuitBreakerConfig, ConfigError
    from cblab.strict_json import loads_bounded

    configs = {}
    for name, defaults in BREAKER_DEFAULTS.items():
        data: dict[str, Any] = dict(defaults)
        raw = getattr(args, f"{name}_config")
        if raw:
            try:
                given = loads_bounded(raw)  # nested thousands deep: an error, not a crash
            except ValueError as exc:
                raise ConfigError(f"--{name}-config is not valid JSON: {exc}") from None
            if not isinstance(given, dict):
                raise ConfigError(f"--{name}-config must be a JSON object")
            data.update(given)
        for flag, key in (("failure_threshold", "failure_threshold"),
                          ("breaker_timeout", "timeout")):
            if getattr(args, flag) is not None:
                data[key] = getattr(args, flag)
        for flag, key in (("failure_threshold", "failure_threshold"), ("timeout", "timeout")):
            value = getattr(args, f"{name}_{flag}")
            if value is not None:
                data[key] = value
        try:
            configs[name] = CircuitBreakerConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{name} breaker: {exc}") from None
    return configs


def listener_limits(args: argparse.Namespace) -> Any:
    """The MCP listener's `Limits` from the flags (ValueError names the bad one)."""
    from cblab.backend.http import Limits

    try:
        return Limits(header_timeout_s=args.header_timeout, idle_timeout_s=args.idle_timeout,
                      max_connections=args.max_open_connections, listeners=2)
    except ValueError as exc:
        flag = str(exc).split(" ", 1)[0]
        flags = {"header_timeout_s": "--header-timeout", "idle_timeout_s": "--idle-timeout",
                 "max_connections": "--max-open-connections"}
        raise ValueError(str(exc).replace(flag, flags.get(flag, flag), 1)) from None


def settings_from_args(args: argparse.Namespace, *, users_url: str | None = None,
                       orders_url: str | None = None) -> Any:
    """ServerSettings from parsed flags (ConfigError names the bad field)."""
    from .app import ServerSettings

    configs = breaker_configs(args)
    token = args.admin_token if args.admin_token is not None else os.environ.get(TOKEN_ENV)
    return ServerSettings(
        users_url=users_url or args.backend_users,
        orders_url=orders_url or args.backend_orders,
        github=configs[GITHUB],
        database=configs[DATABASE],
        protected=not args.unprotected,
        deadline=args.deadline,
        max_connections=args.max_connections,
        max_lag=args.max_lag or None,
        admin_token=token or None,
        event_log_capacity=args.event_capacity,
        variant=args.variant,
        bare=args.bare,
        replica=args.replica,
    )


async def _read_when_ready(path: Path, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        with contextlib.suppress(OSError, ValueError):
            return json.loads(path.read_text(encoding="utf-8"))
        if loop.time() > deadline:
            raise TimeoutError(f"not ready after {timeout:g} s")
        await asyncio.sleep(0.02)


def _telemetry(exporter: str | None) -> Any:
    """`--otel`: the SDK set up to export there, and the telemetry for the middleware."""
    if exporter is None:
        return None
    from cblab.integrations.otel import BreakerTelemetry, configure_sdk

    configure_sdk(exporter, service_name="cblab-serve")
    return BreakerTelemetry()


async def _serve(args: argparse.Namespace) -> int:
    from cblab import ConfigError

    from .app import ServerRunner, build_server

    backend = None
    users, orders = args.backend_users, args.backend_orders
    control = None
    if args.backend_ready_file is not None:
        try:
            urls = await _read_when_ready(args.backend_ready_file, timeout=120.0)
            users, orders, control = urls["users"], urls["orders"], urls.get("control")
        except (TimeoutError, KeyError, TypeError) as exc:
            print(f"cblab serve: no usable backend ready file at {args.backend_ready_file}: "
                  f"{exc!r}", file=sys.stderr)
            return 1
    elif not users and not orders:
        from cblab.backend import Backend

        token = args.admin_token if args.admin_token is not None else os.environ.get(TOKEN_ENV)
        backend = Backend(host="127.0.0.1", seed=args.seed, token=token or None)
        await backend.start()
        users, orders = backend.urls["users"], backend.urls["orders"]
        print(f"cblab serve: started an in-process backend: users={users} orders={orders} "
              f"control={backend.urls['control']}", file=sys.stderr, flush=True)
    store = None
    try:
        try:
            settings = settings_from_args(args, users_url=users, orders_url=orders)
            if args.shared_state:
                from cblab.stores import RedisStore

                store = await RedisStore(
                    args.shared_state, namespace=args.shared_namespace,
                    op_timeout=args.store_timeout,
                    replica=settings.variant_label,
                ).connect()
            mcp = build_server(settings, store=store, telemetry=_telemetry(args.otel))
        except ConfigError as exc:
            flag = "--shared-state: " if type(exc).__name__ == "StoreError" else ""
            print(f"cblab serve: {flag}{exc}", file=sys.stderr)
            return 2
        if args.transport == "stdio":
            print(f"cblab serve: MCP over stdio ({settings.variant_label})", file=sys.stderr,
                  flush=True)
            await mcp.run_async(transport="stdio", show_banner=False)
            return 0
        runner = ServerRunner(mcp, host=args.host, port=args.port, log_level=args.log_level,
                              limits=listener_limits(args))
        try:
            await runner.start()
        except OSError as exc:
            print(f"cblab serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
            return 1
        # Everything loaded so far lives as long as the process: keep it out of the
        # collector's way, so a full collection does not stall calls for tens of ms.
        gc.collect()
        gc.freeze()
        from cblab.backend.cli import serve_until_signal, write_ready_file

        async def started() -> None:
            print(f"cblab serve: MCP endpoint {runner.mcp_url} ({settings.variant_label})",
                  flush=True)
            if args.ready_file is not None:
                write_ready_file(args.ready_file, {
                    "url": runner.url, "mcp_url": runner.mcp_url, "pid": os.getpid(),
                    "variant": settings.variant_label, "protected": settings.protected,
                    "backend": {"users": users, "orders": orders,
                                "control": backend.urls["control"] if backend else control},
                })

        await serve_until_signal(started, runner.wait, runner.request_stop, runner.stop,
                                 args.ready_file)
        return 0
    finally:
        if store is not None:
            await store.close()
        if backend is not None:
            await backend.stop()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.backend_users) != bool(args.backend_orders):
        print("cblab serve: give both --backend-users and --backend-orders, or neither "
              "(to start an in-process backend)", file=sys.stderr)
        return 2
    if args.backend_users and args.backend_ready_file:
        print("cblab serve: give backend URLs or --backend-ready-file, not both", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"cblab serve: --port must be 0..65535, got {args.port}", file=sys.stderr)
        return 2
    for flag, value, most in (("--event-capacity", args.event_capacity, MAX_EVENT_CAPACITY),
                              ("--max-connections", args.max_connections, MAX_DEPENDENCY_SLOTS)):
        if not 1 <= value <= most:  # each is memory (rows) or descriptors (connections)
            print(f"cblab serve: {flag} must be 1..{most:,}, got {value}", file=sys.stderr)
            return 2
    from cblab import ConfigError

    try:
        breaker_configs(args)
        listener_limits(args)
        if args.otel is not None:
            from cblab.integrations.otel import check_exporter

            check_exporter(args.otel)
    except (ConfigError, ValueError) as exc:
        print(f"cblab serve: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:  # the otel extra (or the OTLP exporter) is missing
        print(f"cblab serve: --otel {args.otel}: {exc}", file=sys.stderr)
        return 2
    os.environ.setdefault("FASTMCP_ENABLE_RICH_TRACEBACKS", "false")
    os.environ.setdefault("FASTMCP_SHOW_SERVER_BANNER", "false")
    if args.exit_with_parent is not None:
        from cblab.stack.child import watch_parent

        watch_parent(args.exit_with_parent)
    try:
        return asyncio.run(_serve(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
