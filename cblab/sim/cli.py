"""`cblab simulate` and `cblab sweep`: run the simulator from a terminal.

    cblab simulate outage-and-recovery --set failure_threshold=3 --set timeout=10 -o run.csv
    cblab simulate hang --compare --seed 7
    cblab sweep --param failure_threshold=3,5,10 --param timeout=5,30 \\
        --scenario outage-and-recovery --scenario flapping --seeds 5 -o sweep.csv

Bad arguments, settings or scenarios print one clear message and exit with 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from cblab import CircuitBreakerConfig, ConfigError
from cblab.faults.scenario import ARRIVALS, ScenarioError, available_scenarios

from .model import SERVICE_ROUTES
from .run import DEFAULT_DEADLINE_S, simulate
from .workload import resolve_scenario

__all__ = ["simulate_main", "sweep_main"]

_SUMMARY = (
    ("requested", "calls requested", "{:.0f}"),
    ("availability", "availability", "{:.2%}"),
    ("share_failed_fast", "failed fast (rejected)", "{:.2%}"),
    ("wasted_share", "wasted load", "{:.2%}"),
    ("trips", "trips", "{:.0f}"),
    ("flaps", "flaps", "{:.0f}"),
    ("detection_s", "detection time (s)", "{:.2f}"),
    ("recovery_s", "recovery time (s)", "{:.2f}"),
    ("latency_p50_s", "latency p50 (s)", "{:.4f}"),
    ("latency_p99_s", "latency p99 (s)", "{:.4f}"),
    ("time_open_s", "time open (s)", "{:.1f}"),
)


class _UsageError(Exception):
    """A bad command line: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise _UsageError(message)


def _value(text: str) -> Any:
    """A command-line value: JSON when it parses (5, 0.5, true, null, {...}), else text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _json_arg(text: str, what: str) -> Any:
    """Inline JSON, or the path of a JSON file."""
    source = text
    if not text.lstrip().startswith(("{", "[")):
        path = Path(text)
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise _UsageError(f"cannot read {what} file {text!r}: {exc.strerror}") from None
    try:
        return json.loads(source)
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{what} is not valid JSON: {exc}") from None


def _settings(pairs: list[str], what: str) -> dict[str, str]:
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise _UsageError(f"{what} must look like name=value, got {pair!r}")
        settings[key.strip()] = value
    return settings


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text!r}")
    return value


def _seed(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="JSON|FILE",
                        help="breaker settings as a JSON object, or a JSON file")
    parser.add_argument("--deadline", type=_positive, default=DEFAULT_DEADLINE_S, metavar="S",
                        help=f"whole-call deadline per backend call (default {DEFAULT_DEADLINE_S})")
    parser.add_argument("--service", choices=tuple(SERVICE_ROUTES), default="users",
                        help="backend service called (default users, via breaker github)")
    parser.add_argument("--rate", type=_positive, metavar="PER_S",
                        help="calls per second in every phase (default: the scenario's load)")
    parser.add_argument("--arrivals", choices=ARRIVALS, help="override the arrival process")


def _fmt(value: Any, spec: str) -> str:
    try:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return spec.format(value)
    except (TypeError, ValueError):
        return str(value)


def _base_config(args: argparse.Namespace, sets: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.config:
        data = _json_arg(args.config, "--config")
        if not isinstance(data, dict):
            raise _UsageError("--config must be a JSON object of breaker settings")
    data.update({k: _value(v) for k, v in _settings(sets, "--set").items()})
    try:
        CircuitBreakerConfig.from_dict(dict(data))
    except ConfigError as exc:
        raise _UsageError(f"bad breaker settings: {exc}") from None
    return data


# --- cblab simulate -------------------------------------------------------------------------


def _simulate_parser() -> argparse.ArgumentParser:
    known = ", ".join(available_scenarios()) or "none found"
    parser = _Parser(
        prog="cblab simulate",
        description="Simulate one scenario through the real breaker on virtual time; "
                    "print KPIs and optionally write the events as CSV.",
        epilog=f"shipped scenarios: {known}",
    )
    parser.add_argument("scenario", help="a shipped scenario name or a scenario JSON file")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="one breaker setting, e.g. failure_threshold=3 (repeatable)")
    parser.add_argument("--seed", type=_seed, default=0, help="random seed (default 0)")
    parser.add_argument("--time-scale", type=_positive, default=1.0, metavar="X",
                        help="multiply every phase duration by X")
    side = parser.add_mutually_exclusive_group()
    side.add_argument("--unprotected", action="store_true",
                      help="send every call (the breaker only measures)")
    side.add_argument("--compare", action="store_true",
                      help="run protected and unprotected with the same seed")
    parser.add_argument("--phases", action="store_true", help="also print KPIs per phase")
    parser.add_argument("-o", "--output", metavar="CSV", help="write the events here")
    _common(parser)
    return parser


def simulate_main(argv: list[str] | None = None) -> int:
    """`cblab simulate ...`; returns the exit code (2 for bad input)."""
    try:
        return _simulate(sys.argv[1:] if argv is None else argv)
    except _UsageError as exc:
        print(f"cblab simulate: error: {exc}", file=sys.stderr)
        return 2
    except (ScenarioError, ConfigError, ValueError, TypeError) as exc:
        print(f"cblab simulate: error: {exc}", file=sys.stderr)
        return 2


def _simulate(argv: list[str]) -> int:
    parser = _simulate_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    import pandas as pd

    from cblab.analysis import compare, phase_kpis, run_kpis

    config = _base_config(args, args.set)
    scenario = resolve_scenario(args.scenario)
    options = {"seed": args.seed, "deadline_s": args.deadline, "rate": args.rate,
               "arrivals": args.arrivals, "service": args.service,
               "time_scale": args.time_scale}
    if args.compare:
        runs = [simulate(scenario, config, protected=True, **options),
                simulate(scenario, config, protected=False, **options)]
    else:
        runs = [simulate(scenario, config, protected=not args.unprotected, **options)]
    first = runs[0]
    print(f"{first.scenario.name}: {first.duration_s:g} s simulated, {first.calls} calls to "
          f"{first.service} (breaker {first.breaker}), seed {args.seed}, "
          f"{sum(r.wall_s for r in runs):.2f} s wall")
    if len(runs) == 2:
        table = compare(runs[1], runs[0])
        width = max(len(label) for _, label, _ in _SUMMARY)
        print(f"{'':<{width}}  {'unprotected':>12}  {'protected':>12}")
        for key, label, spec in _SUMMARY:
            row = table.loc[key]
            print(f"{label:<{width}}  {_fmt(row['unprotected'], spec):>12}  "
                  f"{_fmt(row['protected'], spec):>12}")
    else:
        figures = run_kpis(first)
        width = max(len(label) for _, label, _ in _SUMMARY)
        print(f"variant: {first.variant}")
        for key, label, spec in _SUMMARY:
            print(f"{label:<{width}}  {_fmt(figures[key], spec):>12}")
    if args.phases:
        for run in runs:
            table = phase_kpis(run)[["phase", "fault", "requested", "availability",
                                     "share_failed_fast", "wasted", "trips", "time_open_s"]]
            print(f"\nper phase ({run.variant}):")
            print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.output:
        frame = pd.concat([run.to_frame() for run in runs], ignore_index=True)
        if len(runs) == 2:
            frame["seq"] = range(1, len(frame) + 1)
        try:
            frame.to_csv(args.output, index=False)
        except OSError as exc:
            raise _UsageError(f"cannot write {args.output!r}: {exc.strerror}") from None
        print(f"wrote {len(frame)} events to {args.output}")
    return 0


# --- cblab sweep ------------------------------------------------------------------------------


def _sweep_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cblab sweep",
        description="Simulate every combination of breaker settings x scenarios x seeds "
                    "on all cores; print a summary and optionally write one CSV row per run.",
    )
    parser.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2,...",
                        help="values to sweep for one setting, e.g. failure_threshold=3,5,10 "
                             "(repeatable)")
    parser.add_argument("--grid", metavar="JSON|FILE",
                        help='the whole grid as JSON, e.g. {"timeout": [5, 30]}')
    parser.add_argument("--scenario", action="append", default=[], metavar="NAME|FILE",
                        help="a scenario to run (repeatable; default outage-and-recovery)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 (default 3)")
    seeds.add_argument("--seed-list", metavar="S1,S2,...", help="explicit seeds")
    parser.add_argument("--workers", type=int, metavar="N", help="processes (default: all cores)")
    parser.add_argument("--unprotected", action="store_true",
                        help="run every point unprotected (a baseline)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", metavar="CSV", help="write one row per run here")
    _common(parser)
    return parser


def sweep_main(argv: list[str] | None = None) -> int:
    """`cblab sweep ...`; returns the exit code (2 for bad input)."""
    try:
        return _sweep(sys.argv[1:] if argv is None else argv)
    except _UsageError as exc:
        print(f"cblab sweep: error: {exc}", file=sys.stderr)
        return 2
    except (ScenarioError, ConfigError, ValueError, TypeError) as exc:
        print(f"cblab sweep: error: {exc}", file=sys.stderr)
        return 2


def _sweep(argv: list[str]) -> int:
    parser = _sweep_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    from .sweep import sweep

    grid: dict[str, list[Any]] = {}
    if args.grid:
        grid = _json_arg(args.grid, "--grid")
        if not isinstance(grid, dict):
            raise _UsageError("--grid must be a JSON object mapping settings to lists of values")
    for key, values in _settings(args.param, "--param").items():
        grid[key] = [_value(v) for v in values.split(",")]
    if not grid:
        raise _UsageError("nothing to sweep: give --param NAME=V1,V2 or --grid")
    if args.seed_list is not None:
        seeds: Any = [_seed(s.strip()) for s in args.seed_list.split(",") if s.strip()]
    else:
        seeds = args.seeds
    if args.workers is not None and args.workers < 1:
        raise _UsageError(f"--workers must be >= 1, got {args.workers}")
    base = _base_config(args, [])
    table = sweep(
        grid, args.scenario or ["outage-and-recovery"], seeds, base=base, workers=args.workers,
        progress=not args.no_progress, deadline_s=args.deadline, protected=not args.unprotected,
        service=args.service, rate=args.rate,
    )
    keys = list(grid)
    summary = table.groupby(keys, sort=False, dropna=False)[
        ["availability", "share_failed_fast", "wasted_share", "trips", "detection_s", "recovery_s"]
    ].mean()
    print(f"{len(table)} runs ({len(summary)} settings x {table['scenario'].nunique()} scenarios "
          f"x {table['seed'].nunique()} seeds), {table['calls'].sum()} calls simulated; "
          "means over scenarios and seeds:")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.output:
        try:
            table.to_csv(args.output, index=False)
        except OSError as exc:
            raise _UsageError(f"cannot write {args.output!r}: {exc.strerror}") from None
        print(f"wrote {len(table)} rows to {args.output}")
    return 0
