"""`cblab backend`: run the fault-injecting backend until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from cblab.faults.scenario import Scenario, ScenarioError

from .app import Backend
from .http import Limits
from .stores import DataError

__all__ = ["build_parser", "main"]

TOKEN_ENV = "CBLAB_BACKEND_TOKEN"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cblab backend",
        description="Run the fault-injecting HTTP backend (users and orders services "
        "plus a control API), each on its own loopback port.",
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default: %(default)s)"
    )
    parser.add_argument("--users-port", type=int, default=0, help="0 = ephemeral (default)")
    parser.add_argument("--orders-port", type=int, default=0, help="0 = ephemeral (default)")
    parser.add_argument("--control-port", type=int, default=0, help="0 = ephemeral (default)")
    parser.add_argument(
        "--seed",
        default="1",
        help="RNG seed for the fault decisions (default: %(default)s; 'none' for OS entropy)",
    )
    parser.add_argument(
        "--token",
        default=None,
        help=f"bearer token required by the control API (default: ${TOKEN_ENV} if set, else none)",
    )
    parser.add_argument(
        "--ready-file",
        type=Path,
        default=None,
        help="write the URLs and pid here as JSON once listening (atomically; removed on exit)",
    )
    parser.add_argument(
        "--scenario", default=None, help="scenario name or JSON file to play from the start"
    )
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="multiply scenario durations by this (default: %(default)s)",
    )
    parser.add_argument(
        "--db-path",
        type=Path,
        default=None,
        help="where to build the orders SQLite file (default: a temp dir)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="directory with users.json and orders.csv (default: the repo's data/)",
    )
    limits = parser.add_argument_group(
        "limits", "bounds on what clients can hold (per listener: users, orders, control)"
    )
    defaults = Limits()
    limits.add_argument(
        "--header-timeout", type=float, default=defaults.header_timeout_s, metavar="S",
        help="a request must arrive complete within S seconds (default: %(default)s)",
    )
    limits.add_argument(
        "--idle-timeout", type=float, default=defaults.idle_timeout_s, metavar="S",
        help="close a kept-alive connection idle for S seconds (default: %(default)s)",
    )
    limits.add_argument(
        "--max-connections", type=int, default=None, metavar="N",
        help="open connections per listener before new ones get 503 "
        "(default: the descriptor limit, less a reserve, split over the 3 listeners)",
    )
    limits.add_argument(
        "--allow-host", action="append", default=[], metavar="NAME",
        help="also accept this Host on the control API (repeatable; loopback names "
        "and the bound address always are)",
    )
    limits.add_argument(
        "--allow-origin", action="append", default=[], metavar="ORIGIN",
        help="also accept this Origin on the control API (repeatable, e.g. "
        "http://lab.example:8888)",
    )
    return parser


def raise_descriptor_limit() -> None:
    """Lift the soft descriptor limit to the hard one: a server process should
    not run out at the common default of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(target, 1 << 20), hard))


def parse_seed(text: str) -> int | str | None:
    """A --seed value: 'none' (OS entropy), an integer, else the text itself."""
    if text.lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        return text


def write_ready_file(path: Path, payload: dict[str, object]) -> None:
    """Write JSON atomically: readers never see a partial file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload) + "\n", encoding="utf-8")
    os.replace(tmp, path)


async def serve_until_signal(
    started: Callable[[], Awaitable[None]],
    wait: Callable[[], Awaitable[object]],
    on_signal: Callable[[], None],
    shutdown: Callable[[], Awaitable[None]],
    ready_file: Path | None,
) -> None:
    """Run a started service until SIGTERM/SIGINT (`on_signal`) ends `wait`.

    `started` announces the service (ready file, banner); on the way out, even on
    error, the default signal handlers come back first (a second Ctrl-C kills a
    stuck shutdown), then `shutdown` runs and the ready file is removed.
    """
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal)
    try:
        await started()
        await wait()
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await shutdown()
        if ready_file is not None:
            with contextlib.suppress(OSError):
                ready_file.unlink()


async def _serve(args: argparse.Namespace) -> int:
    scenario = Scenario.load(args.scenario) if args.scenario else None
    backend = Backend(
        host=args.host,
        users_port=args.users_port,
        orders_port=args.orders_port,
        control_port=args.control_port,
        seed=parse_seed(args.seed),
        token=args.token or os.environ.get(TOKEN_ENV) or None,
        data_dir=args.data_dir,
        db_path=args.db_path,
        limits=args.limits,
        allowed_hosts=tuple(args.allow_host),
        allowed_origins=tuple(args.allow_origin),
    )
    await backend.start()
    stop = asyncio.Event()

    async def started() -> None:
        if scenario is not None:
            await backend.play(scenario, args.time_scale)
        urls = backend.urls
        if args.ready_file is not None:
            write_ready_file(args.ready_file, {**urls, "pid": os.getpid()})
        print(
            f"cblab backend: users={urls['users']} orders={urls['orders']} "
            f"control={urls['control']} pid={os.getpid()}",
            flush=True,
        )

    await serve_until_signal(started, stop.wait, stop.set, backend.stop, args.ready_file)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not (args.time_scale > 0):
        print("cblab backend: --time-scale must be > 0", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="cblab backend: %(levelname)s %(message)s")
    try:
        args.limits = Limits(
            header_timeout_s=args.header_timeout,
            idle_timeout_s=args.idle_timeout,
            max_connections=args.max_connections,
            listeners=3,
        )
    except ValueError as exc:
        print(f"cblab backend: {exc}", file=sys.stderr)
        return 2
    raise_descriptor_limit()
    try:
        return asyncio.run(_serve(args))
    except (ScenarioError, DataError) as exc:
        print(f"cblab backend: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"cblab backend: cannot listen: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C during shutdown
        return 130
