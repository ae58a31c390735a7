"""`cblab proxy`: a fault-injecting MCP proxy in front of any MCP server, until SIGINT/SIGTERM.

    cblab proxy --upstream http://127.0.0.1:8000/mcp --port 9000
    cblab proxy --upstream-cmd "python my_server.py" --fault '{"error_rate": 0.2}'
    cblab proxy --upstream-cmd "uvx mcp-server-time" --scenario outage-and-recovery

Faults are steered on the control listener (see `cblab.proxy.control`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["build_parser", "main"]

TOKEN_ENV = "CBLAB_PROXY_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cblab proxy",
        description="Put a fault-injecting MCP proxy in front of an MCP server (Streamable "
        "HTTP URL or stdio command). Clients connect to the proxy's /mcp; faults are set "
        "on its control API.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--upstream", metavar="URL", help="the server's Streamable HTTP URL")
    where.add_argument("--upstream-cmd", metavar="COMMAND",
                       help='a stdio server\'s command line, e.g. "python server.py"')
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="MCP port (0 = ephemeral, the default)")
    parser.add_argument("--control-port", type=int, default=0,
                        help="control API port (0 = ephemeral, the default)")
    parser.add_argument("--seed", default="1",
                        help="seed of the fault decisions (default: %(default)s; 'none': OS entropy)")
    parser.add_argument("--token", default=None,
                        help=f"bearer token for the control API (default: ${TOKEN_ENV} if set)")
    parser.add_argument("--fault", metavar="JSON", default=None,
                        help='fault for every tool, e.g. \'{"error_rate": 0.2, "error_as": "jsonrpc"}\'')
    parser.add_argument("--tool-fault", metavar="TOOL=JSON", action="append", default=[],
                        help="fault for one tool (repeatable)")
    parser.add_argument("--scenario", default=None, help="scenario name or JSON file to play")
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply scenario durations by this (default: %(default)s)")
    parser.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                        help="also accept this Host name (repeatable; loopback names always are)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN",
                        help="also accept requests from this Origin, e.g. http://localhost:6274 "
                        "(repeatable; loopback origins always are)")
    parser.add_argument("--max-result-bytes", type=int, default=None, metavar="N",
                        help="largest answer taken from the upstream (default: 16 MiB); a "
                        "larger one is answered with a 'result too large' error")
    parser.add_argument("--ready-file", type=Path, default=None,
                        help="write the URLs and pid here as JSON once listening")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="log each call's tool and fault at DEBUG (never its arguments)")
    return parser


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} is not valid JSON: {exc}") from None


def _faults(args: argparse.Namespace) -> list[tuple[str, Any]]:
    faults: list[tuple[str, Any]] = []
    if args.fault is not None:
        faults.append(("*", _json(args.fault, "--fault")))
    for item in args.tool_fault:
        tool, sep, text = item.partition("=")
        if not sep or not tool:
            raise ValueError(f"--tool-fault must be TOOL=JSON, got {item!r}")
        faults.append((tool, _json(text, f"--tool-fault {tool}")))
    return faults


async def _serve(args: argparse.Namespace) -> int:
    from cblab.backend.cli import parse_seed, serve_until_signal, write_ready_file

    from .server import FaultProxy

    faults = _faults(args)
    proxy = FaultProxy(
        args.upstream or args.upstream_cmd, host=args.host, port=args.port,
        control_port=args.control_port, seed=parse_seed(args.seed),
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        allowed_hosts=args.allow_host, allowed_origins=args.allow_origin,
        **({} if args.max_result_bytes is None else {"max_result_bytes": args.max_result_bytes}),
    )
    await proxy.start()
    stop = asyncio.Event()

    async def started() -> None:
        for target, fault in faults:
            await proxy.set_fault(target, fault)
        if args.scenario:
            await proxy.play(args.scenario, args.time_scale)
        payload = {"mcp_url": proxy.mcp_url, "control_url": proxy.control_url,
                   "upstream": proxy.upstream.describe(), "tools": proxy.tools, "pid": os.getpid()}
        if args.ready_file is not None:
            write_ready_file(args.ready_file, payload)
        print(f"cblab proxy: {proxy.mcp_url} -> {proxy.upstream.describe()}", flush=True)
        print(f"cblab proxy: control API {proxy.control_url}; tools: "
              f"{', '.join(proxy.tools) or 'none'}", flush=True)

    await serve_until_signal(started, stop.wait, stop.set, proxy.stop, args.ready_file)
    return 0


def main(argv: list[str] | None = None) -> int:
    from cblab.faults.profile import ProfileError
    from cblab.faults.scenario import ScenarioError

    from .faults import UnknownToolError
    from .upstream import ProxyError

    args = build_parser().parse_args(argv)
    if not (args.time_scale > 0):
        print("cblab proxy: --time-scale must be > 0", file=sys.stderr)
        return 2
    if args.max_result_bytes is not None and args.max_result_bytes < 1024:
        print(f"cblab proxy: --max-result-bytes must be >= 1024, got {args.max_result_bytes}",
              file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="cblab proxy: %(levelname)s %(message)s")
    if not args.verbose:
        logging.getLogger("fastmcp").setLevel(logging.WARNING)
    try:
        return asyncio.run(_serve(args))
    except (ProxyError, ProfileError, ScenarioError, ValueError) as exc:
        print(f"cblab proxy: {exc}", file=sys.stderr)
        return 1
    except UnknownToolError as exc:
        print(f"cblab proxy: {exc.args[0]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
