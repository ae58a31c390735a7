"""The `cblab` command: one entry point, each subcommand owned by its subpackage.

Subcommands are imported lazily so `cblab backend` does not pay for pandas and
`cblab report` does not pay for fastmcp.
"""

from __future__ import annotations

import importlib
import sys

SUBCOMMANDS = {
    "backend": ("cblab.backend.cli", "main", "run the fault-injecting HTTP backend"),
    "serve": ("cblab.server.cli", "main", "run the instrumented FastMCP demo server"),
    "simulate": ("cblab.sim.cli", "simulate_main", "simulate one scenario, write events as CSV"),
    "sweep": ("cblab.sim.cli", "sweep_main", "sweep breaker settings over scenarios and seeds"),
    "report": ("cblab.report.cli", "main", "build an HTML report from recorded runs"),
    "proxy": ("cblab.proxy.cli", "main", "fault-injecting MCP proxy in front of any MCP server"),
    "load": ("cblab.load.cli", "main", "open-loop load on one tool of an MCP server, saved as a run"),
    "fit": ("cblab.faults.cli", "main", "fit a fault profile to a recorded run, write a scenario"),
    "tune": ("cblab.tune.cli", "main", "tune a breaker on your own traffic: fit, stress, sweep, pick"),
    "record": ("cblab.lab.record", "main", "play a scenario on the live stack, save the runs"),
    "notebooks": ("cblab.notebooks", "main", "copy the lab's Jupyter notebooks into a directory"),
}


def _usage() -> str:
    lines = ["usage: cblab <command> [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_}" for name, (_, _, help_) in SUBCOMMANDS.items()]
    lines += ["", "Run `cblab <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help"}:
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"cblab: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, func_name, _ = SUBCOMMANDS[name]
    func = getattr(importlib.import_module(module_name), func_name)
    return int(func(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
