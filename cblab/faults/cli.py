"""`cblab fit`: a recorded run (or the proxy's /events rows) -> a fault profile scenario.

    cblab fit runs/my-server -o my-server.json        # then: cblab simulate my-server.json
    cblab fit proxy-events.json --source proxy --tool get_forecast
    cblab fit --prometheus http://127.0.0.1:9090 --tool github -o github.json

Prints the quality table (per phase: calls, error rate and its 95 % interval,
timeouts, the fitted latency, KS distance, observed vs fitted p50/p90/p99) and
writes the fitted phases as a scenario JSON that `cblab simulate`, `cblab sweep`
and `cblab.sim` accept. The deadline comes from the run's metadata when
`cblab load` recorded it (so fit and replay agree), else from ``--deadline``.
Phases: the rows' labels, else found by change-point detection (``--phases``,
`cblab.faults.changepoint`), as the output says.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

__all__ = ["PHASE_MODES", "add_fit_options", "check_fit_options", "fit_rows", "main",
           "phases_for", "say_phases"]

PHASE_MODES = ("auto", "labels", "one")

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cblab fit",
        description="Fit a fault profile per phase to a recorded run (a run directory from "
        "`cblab load`/`cblab record`, or a JSON/CSV file of event rows such as the proxy's "
        "/events) and write it as a scenario for `cblab simulate` and `cblab sweep`.",
    )
    parser.add_argument("run", type=Path, nargs="?",
                        help="a run directory, or a .json/.csv file of rows (or --prometheus)")
    parser.add_argument("-o", "--out", type=Path, default=None,
                        help="write the fitted scenario here (JSON); default: print only")
    parser.add_argument("--name", default=None, help="the scenario's name (default: the input's)")
    add_fit_options(parser, deadline_default="the run's own, as recorded by cblab load")
    from cblab.tune.prometheus import add_prometheus_options

    add_prometheus_options(parser.add_argument_group(
        "or the breaker's own metrics in Prometheus (--tool: the breaker's name)"))
    return parser


def add_fit_options(parser: Any, *, deadline_default: str) -> None:
    """The flags that say which rows to fit and how (`cblab fit` and `cblab tune`)."""
    parser.add_argument("--source", default="auto",
                        help="rows of this source only: load, proxy, server (default: load if "
                        "present, else every call row)")
    parser.add_argument("--tool", default=None, help="one tool's calls only (default: all)")
    parser.add_argument("--deadline", type=float, default=None, metavar="S",
                        help="the client's deadline in seconds, to model timed-out calls "
                        f"(default: {deadline_default})")
    parser.add_argument("--warmup", default="auto", metavar="auto|S",
                        help="leave out a client warm-up stall: auto (found from the "
                        "latencies), 0 (keep every call) or seconds from the start")
    parser.add_argument("--phases", choices=PHASE_MODES, default=None,
                        help="auto: find the phases (healthy, outage, slow) by change-point "
                        "detection; labels: the rows' phase labels; one: the whole run as one "
                        "phase (default: labels when the rows have them, else auto)")


def check_fit_options(args: argparse.Namespace) -> str | float:
    """Refuse a bad --deadline (ValueError) before any work; the parsed --warmup."""
    from .warmup import parse_warmup

    if args.deadline is not None and not (math.isfinite(args.deadline) and args.deadline > 0):
        raise ValueError(f"--deadline must be seconds > 0, got {args.deadline!r}")
    if args.phases is not None and getattr(args, "phase", None):
        raise ValueError(f"--phases {args.phases} and --phase NAME=START:END: give one")
    return parse_warmup(args.warmup)


def fit_rows(args: argparse.Namespace, rows: list[dict[str, Any]], meta: dict[str, Any],
             warmup: str | float, phases: Any = None) -> tuple[Any, float | None]:
    """Fit `rows` as the fit flags say: --source auto is "load" when the run has load
    rows; the deadline is --deadline, else the run's own (from its metadata); the
    phases as `phases_for` says (found ones are printed, `say_phases`)."""
    from .fit import fit_run

    source = _source(args, rows)
    deadline = args.deadline
    if deadline is None:
        deadline = (meta.get("extra") or {}).get("deadline_s")
    fit = fit_run(rows, source=source, tool=args.tool, deadline_s=deadline, warmup=warmup,
                  phases=phases_for(args.phases, phases, rows))
    say_phases(fit, args, rows, deadline)
    return fit, deadline


def _source(args: argparse.Namespace, rows: list[dict[str, Any]]) -> str | None:
    """--source; auto is "load" when the run has load rows, else every source."""
    if args.source != "auto":
        return str(args.source)
    return "load" if any(r.get("source") == "load" for r in rows) else None


def phases_for(mode: str | None, given: Any, rows: list[dict[str, Any]]) -> Any:
    """`fit_run`'s `phases` from --phases (`mode`) and phases given by time (`given`,
    tune's --phase): given ones win; no mode means the rows' labels when they have
    them, else "auto" (change-point detection)."""
    if given is not None:
        return given
    if mode is None:
        labelled = any(isinstance(r.get("phase"), str) and r.get("phase") for r in rows)
        mode = "labels" if labelled else "auto"
    if mode == "auto":
        return "auto"
    return [("all", -math.inf, math.inf)] if mode == "one" else None


def say_phases(fit: Any, args: argparse.Namespace, rows: list[dict[str, Any]],
               deadline: float | None) -> None:
    """Print the phases change-point detection found (if it ran), and each tool's own
    when the fit pooled several."""
    if fit.found is None:
        return
    why = "" if args.phases else "the rows carry no phase labels, so "
    what = f"tool {fit.found.tool}" if fit.found.tool else "the calls"
    print(f"phases: {why}found by change-point detection for {what} (change points to "
          f"within {fit.found.bin_s:.2g} s; --phases one fits one phase): "
          f"{fit.found.describe()}")
    if fit.found.tool is not None or args.tool is not None:
        return
    from .changepoint import phases_by_tool

    source = _source(args, rows)
    calls = [r for r in rows if source is None or r.get("source") == source]
    for tool, found in phases_by_tool(calls, deadline_s=deadline).items():
        print(f"  tool {tool or '(none)'} alone: {found.describe()}")
    print("  (the fit pools these tools; --tool NAME fits one)")


def main(argv: list[str] | None = None) -> int:
    from cblab.runs import read_event_rows

    from .fit import FitError

    args = build_parser().parse_args(argv)
    try:
        warmup = check_fit_options(args)
        if args.out is not None and not args.out.parent.is_dir():
            raise ValueError(f"-o {args.out}: directory {args.out.parent} does not exist")
        from cblab.tune.prometheus import rows_from_args

        rows, meta = rows_from_args(args) or read_event_rows(args.run)
        if not rows:
            raise ValueError(f"{args.run}: no rows")
        fit, deadline = fit_rows(args, rows, meta, warmup)
    except (FitError, ValueError, OSError) as exc:
        print(f"cblab fit: {exc}", file=sys.stderr)
        return 2
    name = args.name or (args.run.stem if args.run else meta["prometheus"]["name"])
    if fit.warmup:
        print(f"warm-up: {fit.warmup.dropped} calls scheduled in the first "
              f"{fit.warmup.end_s - min(float(r['t']) for r in rows if r.get('t') is not None):.1f} s "
              "left out (a client warm-up stall; --warmup 0 keeps them)")
    with _wide_pandas():
        print(fit.quality().to_string())
    scenario = fit.scenario(name)
    if args.out is not None:
        args.out.write_text(json.dumps(scenario, indent=2) + "\n", encoding="utf-8")
        hint = "" if deadline is None else f" --deadline {deadline:g}"
        print(f"wrote {args.out}: {len(fit.phases)} phase(s); replay it with "
              f"`cblab simulate {args.out}{hint}`")
    return 0


def _wide_pandas() -> Any:
    import pandas as pd

    return pd.option_context("display.width", 200, "display.max_columns", 30)
