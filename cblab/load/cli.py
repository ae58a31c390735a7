"""`cblab load`: open-loop load against any MCP endpoint, saved as a recorded run.

    cblab load http://127.0.0.1:9000/mcp --tool get_forecast --args '{"city": "Oslo"}' \\
        --rate 20 --duration 30 --out runs/my-service

Before it records, it warms up: ``--warmup N`` calls (default 2) that are not
recorded, so the client's first-call cost (fastmcp imports JSON-schema tooling on
the first call to a tool with an output schema: seconds) never lands in the run.
It says how long that took. ``--phase LABEL`` labels every row (a fit per phase).

A server that goes away mid-run and comes back does not end the run: the calls
meanwhile are recorded as failures with their connection error's code, and the
next call reconnects (`cblab.load.generator`).

The run directory (`cblab.runs`) holds one row per arrival (``source="load"``);
`cblab report` and `cblab.faults.fit` read it. Tool arguments are not stored in
the run (they may hold secrets), only the tool's name.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["LoadSetupError", "build_parser", "main", "record_load"]


class LoadSetupError(RuntimeError):
    """The target cannot be loaded as asked (unreachable, unknown tool, ...)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cblab load",
        description="Send open-loop load (Poisson or constant arrivals) to one tool of an MCP "
        "server over Streamable HTTP and save the calls as a recorded run.",
        epilog="Exit status: 0 saved; 2 bad input or a target that cannot be loaded "
        "(unreachable, unknown tool), said in one line before the run; 1 saving failed.",
    )
    parser.add_argument("url", help="the MCP endpoint, e.g. http://127.0.0.1:9000/mcp")
    parser.add_argument("--tool", required=True, help="the tool to call")
    parser.add_argument("--args", default="{}", metavar="JSON",
                        help="the tool's arguments as a JSON object (default: {})")
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second (default: 10)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default: 10)")
    parser.add_argument("--arrivals", choices=("poisson", "constant"), default="poisson",
                        help="arrival process: Poisson (default) or evenly spaced")
    parser.add_argument("--deadline", type=float, default=5.0,
                        help="whole-call deadline in seconds (default: 5)")
    parser.add_argument("--max-in-flight", type=int, default=64,
                        help="calls in flight at most; arrivals past it are dropped and counted")
    parser.add_argument("--seed", type=int, default=0, help="arrival RNG seed (default: 0)")
    parser.add_argument("--out", type=Path, default=None,
                        help="run directory to write (default: runs/load-<tool>)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing run")
    parser.add_argument("--name", default=None, help="the run's name (default: the directory's)")
    parser.add_argument("--warmup", type=int, default=2, metavar="N",
                        help="calls made and not recorded before the run (default: 2; 0: none)")
    parser.add_argument("--phase", default=None,
                        help="label every row with this phase name (default: none)")
    return parser


async def _check_target(url: str, tool: str, timeout: float) -> None:
    from fastmcp import Client

    from cblab.proxy.upstream import Upstream, error_reason

    upstream = Upstream.url(url)
    try:
        async with asyncio.timeout(timeout), Client(url) as client:
            tools = [t.name for t in await client.list_tools()]
    except TimeoutError:
        raise LoadSetupError(f"{upstream.describe()} did not answer within {timeout:g} s") from None
    except Exception as exc:
        raise LoadSetupError(f"cannot reach {upstream.describe()}: {error_reason(exc)}") from None
    if tool not in tools:
        raise LoadSetupError(
            f"unknown tool {tool!r}; the server's tools: {', '.join(tools) or 'none'}"
        )


async def warm_up(url: str, tool: str, arguments: dict[str, Any], calls: int,
                  timeout: float) -> float:
    """Make `calls` unrecorded calls (whatever they answer); the seconds they took."""
    from fastmcp import Client

    loop = asyncio.get_running_loop()
    started = loop.time()
    async with Client(url) as client:
        for _ in range(calls):
            try:
                async with asyncio.timeout(timeout):
                    await client.call_tool_mcp(tool, arguments)
            except Exception:  # a warm-up call may fail: the run is what we measure
                pass
    return loop.time() - started


async def record_load(url: str, tool: str, arguments: dict[str, Any], *, rate: float,
                      duration: float, arrivals: str = "poisson", deadline: float = 5.0,
                      max_in_flight: int = 64, seed: int = 0, warmup: int = 2,
                      phase: str | None = None, say: Any = None) -> Any:
    """Check the target, warm up, run the load, return the finished `LoadGenerator`
    (its ``warmup_s`` says how long the warm-up took)."""
    from .generator import LoadGenerator

    await _check_target(url, tool, timeout=max(deadline, 5.0))
    took = await warm_up(url, tool, arguments, warmup, timeout=max(deadline, 10.0)) if warmup else 0.0
    gen = LoadGenerator(url, tool, arguments, rate=rate, arrivals=arrivals, seed=seed,
                        max_in_flight=max_in_flight, deadline=deadline, keep_all=True,
                        phase=phase)
    gen.warmup_s = took
    if warmup and say is not None:
        say(f"cblab load: warm-up: {warmup} call(s) in {took:.1f} s, not recorded")
    return await gen.run(duration=duration)


def _check(args: argparse.Namespace) -> dict[str, Any]:
    try:
        arguments = json.loads(args.args)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--args is not valid JSON: {exc}") from None
    if not isinstance(arguments, dict):
        raise ValueError(f"--args must be a JSON object, got {type(arguments).__name__}")
    for name in ("rate", "duration", "deadline"):
        value = getattr(args, name)
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"--{name} must be a number > 0, got {value!r}")
    if args.max_in_flight < 1:
        raise ValueError(f"--max-in-flight must be >= 1, got {args.max_in_flight}")
    if not 0 <= args.warmup <= 100:
        raise ValueError(f"--warmup must be 0 to 100 calls, got {args.warmup}")
    if args.phase is not None and not (0 < len(args.phase) <= 64):
        raise ValueError("--phase must be 1 to 64 characters")
    return arguments


def main(argv: list[str] | None = None) -> int:
    from cblab.proxy.upstream import ProxyError
    from cblab.runs import RunError, save_run

    args = build_parser().parse_args(argv)
    out = args.out or Path("runs") / f"load-{args.tool}"
    try:
        arguments = _check(args)
        if out.exists() and not args.overwrite:
            raise ValueError(f"{out} exists (pass --overwrite to replace it)")
        gen = asyncio.run(record_load(
            args.url, args.tool, arguments, rate=args.rate, duration=args.duration,
            arrivals=args.arrivals, deadline=args.deadline, max_in_flight=args.max_in_flight,
            seed=args.seed, warmup=args.warmup, phase=args.phase,
            say=lambda line: print(line, flush=True),
        ))
        meta = {
            "name": args.name or out.name, "kind": "live", "seed": args.seed,
            "notes": f"cblab load: {args.tool} at {args.rate:g}/s for {args.duration:g} s",
            "extra": {"target": args.url, "tool": args.tool, "rate_per_s": args.rate,
                      "arrivals": args.arrivals, "deadline_s": args.deadline,
                      "warmup_calls": args.warmup, "warmup_s": round(gen.warmup_s, 3)},
        }
        save_run(out, gen.to_frame(), meta, overwrite=args.overwrite)
    except (LoadSetupError, ProxyError, ValueError) as exc:
        # bad flags, or a target that cannot be loaded as asked: found before the run,
        # exit 2 as every cblab command does for bad input
        print(f"cblab load: {exc}", file=sys.stderr)
        return 2
    except (RunError, FileExistsError) as exc:  # the run happened; saving it failed
        print(f"cblab load: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    summary = gen.summary()
    p50, p99 = summary["p50"], summary["p99"]
    counts = ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items()))
    print(f"cblab load: {summary['sent']} calls ({counts}); p50 "
          f"{'-' if p50 is None else f'{p50 * 1000:.1f} ms'}, p99 "
          f"{'-' if p99 is None else f'{p99 * 1000:.1f} ms'}; run saved to {out}")
    return 0
