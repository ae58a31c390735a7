"""`cblab simulate` and `cblab sweep`: run the simulator from a terminal.

    cblab simulate outage-and-recovery --set failure_threshold=3 --set timeout=10 -o run.csv
    cblab simulate hang --compare --seed 7
    cblab sweep --param failure_threshold=3,5,10 --param timeout=5,30 \\
        --scenario outage-and-recovery --scenario flapping --seeds 5 -o sweep.parquet
    cblab sweep ... --executor dask --scheduler tcp://10.0.0.5:8786

Both commands share one parent parser for the breaker and simulation options
(`--config`, `--set`, `--deadline`, `--service`, `--rate`, `--arrivals`).
Bad arguments, settings, scenarios or an unreachable scheduler print one clear
message and exit with 2; Ctrl-C stops a sweep with exit code 130, no output file
written, and what was computed kept in the cache.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from cblab import CircuitBreakerConfig, ConfigError
from cblab.demo import SERVICE_ROUTES
from cblab.faults.scenario import ARRIVALS, ScenarioError, available_scenarios
from cblab.strict_json import loads_bounded, read_json_file

from .bounds import DEFAULT_MAX_CALLS, WorkLimitError, add_work_limit_options
from .cache import DEFAULT_MAX_BYTES
from .executors import max_local_workers
from .run import DEFAULT_DEADLINE_S, simulate, write_events_csv
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
        return loads_bounded(text)
    except json.JSONDecodeError:
        return text
    except ValueError as exc:
        raise _UsageError(f"value {text[:40]!r}...: {exc}") from None


def _json_arg(text: str, what: str) -> Any:
    """Inline JSON, or the path of a JSON file (bounded: size, nesting, a regular file)."""
    try:
        if text.lstrip().startswith(("{", "[")):
            return loads_bounded(text)
        try:
            return read_json_file(text)
        except OSError as exc:
            raise _UsageError(f"cannot read {what} file {text!r}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise _UsageError(f"{what} is not valid JSON: {exc}") from None
    except ValueError as exc:
        raise _UsageError(f"{what}: {exc}") from None


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


def _count(text: str) -> int:
    """A limit: a whole number >= 1 (1e6 and 1_000_000 are accepted)."""
    try:
        value = float(text.replace("_", "")) if not text.strip().isdigit() else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if not (math.isfinite(value) and value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return int(value)


def _check_output(path: str) -> None:
    """Refuse an -o we could not write, before any work: a directory that is missing
    or read-only, or a path that is a directory."""
    target = Path(path)
    parent = target.parent
    if target.is_dir():
        raise _UsageError(f"cannot write -o {path!r}: it is a directory")
    if not parent.is_dir():
        problem = "is not a directory" if parent.exists() else "does not exist"
        raise _UsageError(f"cannot write -o {path!r}: {str(parent)!r} {problem}")
    try:  # the real test: can a file be created there (the output goes via a temp file)
        fd, probe = tempfile.mkstemp(dir=parent, prefix=f".{target.name}.", suffix=".probe")
    except OSError as exc:
        raise _UsageError(f"cannot write -o {path!r}: cannot create a file in "
                          f"{str(parent)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)
    if target.exists() and not os.access(target, os.W_OK):
        raise _UsageError(f"cannot write -o {path!r}: the file is read-only")


def _seed(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _options_parser() -> argparse.ArgumentParser:
    """The options `cblab simulate` and `cblab sweep` share (a parent parser)."""
    parser = _Parser(add_help=False)
    group = parser.add_argument_group("breaker and simulation settings")
    group.add_argument("--config", metavar="JSON|FILE",
                       help="breaker settings as a JSON object, or a JSON file")
    group.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                       help="one breaker setting, e.g. failure_threshold=3 (repeatable; "
                            "overrides --config)")
    group.add_argument("--deadline", type=_positive, default=DEFAULT_DEADLINE_S, metavar="S",
                       help=f"whole-call deadline per backend call (default {DEFAULT_DEADLINE_S})")
    group.add_argument("--service", choices=tuple(SERVICE_ROUTES), default="users",
                       help="backend service called (default users, via breaker github)")
    group.add_argument("--rate", type=_positive, metavar="PER_S",
                       help="calls per second in every phase (default: the scenario's load)")
    group.add_argument("--arrivals", choices=ARRIVALS, help="override the arrival process")
    limits = parser.add_argument_group("work bounds (checked before anything runs)")
    limits.add_argument("--max-calls", type=_count, default=DEFAULT_MAX_CALLS, metavar="N",
                        help="refuse a run expected to simulate more calls (rate x duration; "
                             f"default {DEFAULT_MAX_CALLS:,}: about 400 MB at most)")
    return parser


def _fmt(value: Any, spec: str) -> str:
    try:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return spec.format(value)
    except (TypeError, ValueError):
        return str(value)


def _base_config(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if args.config:
        data = _json_arg(args.config, "--config")
        if not isinstance(data, dict):
            raise _UsageError("--config must be a JSON object of breaker settings")
    data.update({k: _value(v) for k, v in _settings(args.set, "--set").items()})
    try:
        CircuitBreakerConfig.from_dict(dict(data))
    except ConfigError as exc:
        raise _UsageError(f"bad breaker settings: {exc}") from None
    return data


# --- cblab simulate -------------------------------------------------------------------------


def _simulate_parser() -> argparse.ArgumentParser:
    known = ", ".join(available_scenarios()) or "none found"
    parser = _Parser(
        prog="cblab simulate", parents=[_options_parser()],
        description="Simulate one scenario through the real breaker on virtual time; "
                    "print KPIs and optionally write the events as CSV.",
        epilog=f"shipped scenarios: {known}",
    )
    parser.add_argument("scenario", help="a shipped scenario name or a scenario JSON file")
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
    return parser


def _main(command: str, parser: argparse.ArgumentParser, body: Any,
          argv: list[str] | None) -> int:
    """Parse, run `body(args)`, and turn bad input into one line and exit code 2."""
    try:
        try:
            args = parser.parse_args(sys.argv[1:] if argv is None else argv)
        except SystemExit as exc:  # --help
            return int(exc.code or 0)
        return int(body(args))
    except WorkLimitError as exc:
        print(f"cblab {command}: error: {exc.for_command_line()}", file=sys.stderr)
        return 2
    except (_UsageError, ScenarioError, ConfigError, ValueError, TypeError) as exc:
        print(f"cblab {command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cblab {command}: interrupted: no output written"
              + ("; finished runs are in the cache" if command == "sweep" else ""),
              file=sys.stderr)
        return 130


def simulate_main(argv: list[str] | None = None) -> int:
    """`cblab simulate ...`; returns the exit code (2 for bad input)."""
    return _main("simulate", _simulate_parser(), _simulate, argv)


def _simulate(args: argparse.Namespace) -> int:
    from cblab.analysis import compare, phase_kpis, run_kpis

    config = _base_config(args)
    scenario = resolve_scenario(args.scenario)
    if args.output:
        _check_output(args.output)
    options = {"seed": args.seed, "deadline_s": args.deadline, "rate": args.rate,
               "arrivals": args.arrivals, "service": args.service,
               "time_scale": args.time_scale, "max_calls": args.max_calls}
    if args.compare:
        runs = [simulate(scenario, config, protected=True, **options),
                simulate(scenario, config, protected=False, **options)]
    else:
        runs = [simulate(scenario, config, protected=not args.unprotected, **options)]
    first = runs[0]
    fitted = (first.scenario.description or "").startswith("fitted from a recorded run")
    target = ("the fitted service" if fitted
              else f"{first.service} (breaker {first.breaker})")  # the demo's names otherwise
    print(f"{first.scenario.name}: {first.duration_s:g} s simulated, {first.calls} calls to "
          f"{target}, seed {args.seed}, {sum(r.wall_s for r in runs):.2f} s wall")
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
        try:
            written = write_events_csv(runs, args.output)
        except OSError as exc:
            raise _UsageError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
        print(f"wrote {written} events to {args.output}")
    return 0


# --- cblab sweep ------------------------------------------------------------------------------


def _sweep_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="cblab sweep", parents=[_options_parser()],
        description="Simulate every combination of breaker settings x scenarios x seeds, "
                    "on all cores or a Dask cluster; print a summary and optionally write "
                    "one row per run (Parquet or CSV, with the run's metadata).",
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
    parser.add_argument("--unprotected", action="store_true",
                        help="run every point unprotected (a baseline)")
    add_work_limit_options(parser, work="sweep", product="grid points x scenarios x seeds",
                           count=_count)
    run = parser.add_argument_group("where and how it runs")
    run.add_argument("--executor", choices=("local", "dask"), default="local",
                     help="local: a process pool (default); dask: a Dask cluster")
    run.add_argument("--scheduler", metavar="ADDRESS",
                     help="an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 (with "
                          "--executor dask; default: a LocalCluster of --workers)")
    run.add_argument("--workers", type=int, metavar="N",
                     help="processes for the local pool or the LocalCluster (default: all cores)")
    run.add_argument("--batch-size", type=int, metavar="N",
                     help="simulations per task (default: sized by a quick calibration)")
    run.add_argument("--no-cache", action="store_true", help="compute every run; read and write "
                     "no cached result")
    run.add_argument("--cache-dir", metavar="DIR",
                     help="result cache directory (default $CBLAB_CACHE_DIR or "
                          "~/.cache/cblab/sweep)")
    run.add_argument("--cache-size", type=_positive, default=DEFAULT_MAX_BYTES / 2**20,
                     metavar="MB", help="cap on the cache's size; the oldest entries go first "
                                        f"(default {DEFAULT_MAX_BYTES // 2**20})")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-o", "--output", metavar="FILE.parquet|FILE.csv",
                        help="write one row per run (grid, KPIs; metadata inside a Parquet file "
                             "or in FILE.csv.meta.json)")
    return parser


def sweep_main(argv: list[str] | None = None) -> int:
    """`cblab sweep ...`; returns the exit code (2 for bad input, 130 when interrupted)."""
    return _main("sweep", _sweep_parser(), _sweep, argv)


def _sweep_grid(args: argparse.Namespace) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    if args.grid:
        grid = _json_arg(args.grid, "--grid")
        if not isinstance(grid, dict):
            raise _UsageError("--grid must be a JSON object mapping settings to lists of values")
    for key, values in _settings(args.param, "--param").items():
        grid[key] = [_value(v) for v in values.split(",")]
    if not grid:
        raise _UsageError("nothing to sweep: give --param NAME=V1,V2 or --grid")
    return grid


def _sweep(args: argparse.Namespace) -> int:
    from .cache import CacheError, ResultCache
    from .sweep import sweep, write_sweep

    grid = _sweep_grid(args)
    if args.seed_list is not None:
        seeds: Any = [_seed(s.strip()) for s in args.seed_list.split(",") if s.strip()]
    else:
        seeds = args.seeds
    for flag, value in (("--workers", args.workers), ("--batch-size", args.batch_size)):
        if value is not None and value < 1:
            raise _UsageError(f"{flag} must be >= 1, got {value}")
    if args.workers is not None and args.workers > max_local_workers():
        raise _UsageError(f"--workers must be at most {max_local_workers()} on this machine "
                          f"(4 per core), got {args.workers}")
    if args.scheduler and args.executor != "dask":
        raise _UsageError("--scheduler needs --executor dask")
    if args.scheduler and args.workers is not None:
        raise _UsageError("--workers sizes a LocalCluster; a --scheduler's cluster has its own")
    if args.output and Path(args.output).suffix.lower() not in (".parquet", ".csv"):
        raise _UsageError(f"-o must end in .parquet or .csv, got {args.output!r}")
    if args.output:
        _check_output(args.output)
    cache = None if args.no_cache else ResultCache(args.cache_dir,
                                                   max_bytes=int(args.cache_size * 2**20))
    if cache is not None:
        try:
            cache.open()
        except CacheError as exc:
            raise _UsageError(f"--cache-dir: {exc} (or run with --no-cache)") from None
    table = sweep(
        grid, args.scenario or ["outage-and-recovery"], seeds, base=_base_config(args),
        executor=args.executor, scheduler=args.scheduler, workers=args.workers,
        batch_size=args.batch_size, cache=cache if cache is not None else False,
        progress=not args.no_progress, deadline_s=args.deadline,
        protected=not args.unprotected, service=args.service, rate=args.rate,
        arrivals=args.arrivals, max_runs=args.max_runs, max_calls=args.max_calls,
        max_sweep_calls=args.max_sweep_calls,
    )
    meta = table.attrs["sweep"]
    keys = list(grid)
    summary = table.groupby(keys, sort=False, dropna=False)[
        ["availability", "share_failed_fast", "wasted_share", "trips", "detection_s", "recovery_s"]
    ].mean()
    print(f"{len(table)} runs ({len(summary)} settings x {table['scenario'].nunique()} scenarios "
          f"x {table['seed'].nunique()} seeds), {table['calls'].sum()} calls simulated, "
          f"{meta['cached']} from the cache, {meta['wall_s']:.1f} s on {meta['executor']} "
          f"({meta['workers']} workers); means over scenarios and seeds:")
    print(summary.to_string(float_format=lambda v: f"{v:.3f}"))
    if args.output:
        try:
            write_sweep(table, args.output)
        except OSError as exc:
            raise _UsageError(f"cannot write {args.output!r}: {exc.strerror or exc}") from None
        print(f"wrote {len(table)} rows to {args.output}")
    return 0
