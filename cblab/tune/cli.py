"""`cblab tune RUN`: fit your traffic, stress it, sweep, pick robustly, write (and apply) a config.

    cblab tune runs/my-server -o config.json
    cblab tune proxy-events.json --objective cost --cost-wasted 5 --max-wasted 200
    cblab tune runs/my-server --current today.json --apply http://127.0.0.1:8000 --token T

Fits the run (`cblab.faults.fit`, as `cblab fit`), builds stress variants of the
fitted profile (`cblab.tune.variants`), sweeps the grid over variants x seeds
(`cblab.sim.sweep`, with its work bounds), prints the robust pick (best worst
variant) with 95 % confidence intervals next to the current config, and writes the
pick as a config JSON (`CircuitBreakerConfig.from_dict`, `cblab serve
--github-config "$(cat config.json)"`). Bad input: one line, exit 2, before any work.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

__all__ = ["main"]

TOKEN_ENV = "CBLAB_ADMIN_TOKEN"


class _UsageError(ValueError):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2 (not argparse's usage dump)
        print(f"{self.prog}: {message}", file=sys.stderr)
        raise SystemExit(2)


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {text!r}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    from cblab.faults.cli import add_fit_options
    from cblab.sim.bounds import add_work_limit_options

    from .prometheus import add_prometheus_options
    from .variants import VARIANTS

    p = _Parser(prog="cblab tune", description="Tune a breaker on your own traffic: fit the "
                "run, sweep settings over stress variants of its outage, pick the setting whose "
                "worst variant is best, and write (or apply) it as a config.")
    p.add_argument("run", type=Path, nargs="?", help="a run directory, a .json/.csv file of "
                   "event rows (e.g. the proxy's /events), or an OTLP JSON trace export of MCP "
                   "tools/call spans (or --prometheus instead)")
    p.add_argument("-o", "--out", type=Path, default=None,
                   help="write the picked config here (JSON for CircuitBreakerConfig.from_dict)")
    p.add_argument("--table", type=Path, default=None, metavar="FILE",
                   help="also write every simulated run's KPIs (.parquet or .csv, as "
                        "`cblab sweep -o`): the evidence behind the pick")
    p.add_argument("--report", type=Path, default=None, metavar="DIR",
                   help="also write an HTML report of the loop into DIR (index.html: the "
                        "fit's quality, the sweep's heatmaps, the pick against the current "
                        "config)")
    p.add_argument("--current", default=None, metavar="FILE|URL",
                   help="today's config to compare with: a JSON file, or a cblab server's "
                        "base URL (read through its admin API, with --token); default: the "
                        "server's with --apply, else the library defaults")
    inputs = p.add_argument_group("the fit")
    add_fit_options(inputs, deadline_default="the run's own, else the simulator's")
    inputs.add_argument("--phase", action="append", default=[], metavar="NAME=START:END",
                        help="a phase by time on the rows' t axis, in seconds (repeatable; "
                             "default: as --phases says)")
    add_prometheus_options(p.add_argument_group(
        "or the breaker's own metrics in Prometheus (--tool: the breaker's name)"))
    search = p.add_argument_group("the search")
    search.add_argument("--param", action="append", default=[], metavar="NAME=V1,V2",
                        help="values to try for one breaker setting (repeatable; default "
                             "failure_threshold=3,5,10,20 and timeout=5,15,30,60)")
    search.add_argument("--variants", default=",".join(VARIANTS), metavar="A,B",
                        help=f"stress variants to sweep (default: {','.join(VARIANTS)})")
    search.add_argument("--longer", type=float, default=3.0, metavar="X",
                        help="the longer variant's outage lasts X times the observed (default 3)")
    search.add_argument("--seeds", type=_count, default=5, metavar="N",
                        help="seeds per (setting, variant) (default 5)")
    search.add_argument("--search", choices=("auto", "grid", "optuna"), default="auto",
                        help="the whole grid, or optuna's TPE sampler over its values (auto: "
                             "the grid up to 200 settings, optuna beyond)")
    search.add_argument("--trials", type=_count, default=60, metavar="N",
                        help="settings optuna tries (default 60)")
    search.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="run the sweep on a local process pool or a Dask cluster")
    search.add_argument("--workers", type=_count, default=None, metavar="N",
                        help="worker processes (default: every core; 1 runs in this process)")
    search.add_argument("--scheduler", default=None, metavar="ADDR",
                        help="a Dask scheduler address (with --executor dask)")
    add_work_limit_options(search, work="search", product="settings x variants x seeds",
                           count=_count)
    goal = p.add_argument_group("the objective")
    goal.add_argument("--objective", choices=("availability", "cost"), default="availability",
                      help="maximise availability, or minimise the cost per 1,000 requests")
    goal.add_argument("--cost-failed", type=_number, default=1.0, metavar="W",
                      help="cost of a failed request (default 1)")
    goal.add_argument("--cost-wasted", type=_number, default=1.0, metavar="W",
                      help="cost of a call sent into the failing dependency (default 1)")
    goal.add_argument("--cost-refused", type=_number, default=0.0, metavar="W",
                      help="cost of a fast refusal by the breaker (default 0)")
    goal.add_argument("--max-wasted", type=_number, default=None, metavar="N",
                      help="only settings whose worst variant sends at most N calls (mean per "
                           "run) into the failing dependency")
    live = p.add_argument_group("apply to a running server")
    live.add_argument("--apply", default=None, metavar="URL",
                      help="PUT the pick to this cblab server's admin API, e.g. "
                           "http://127.0.0.1:8000")
    live.add_argument("--token", default=None,
                      help=f"the server's admin token (default: ${TOKEN_ENV}); required "
                           "with --apply")
    live.add_argument("--breaker", default="github",
                      help="the breaker to reconfigure (default github)")
    from .verify import add_verify_options

    add_verify_options(p)
    return p


def _grid(params: list[str]) -> dict[str, list[Any]]:
    from .loop import DEFAULT_GRID

    if not params:
        return {k: list(v) for k, v in DEFAULT_GRID.items()}
    from cblab import CircuitBreakerConfig

    known = [f for f in CircuitBreakerConfig.__dataclass_fields__
             if f not in ("excluded_exceptions", "is_excluded")]
    grid: dict[str, list[Any]] = {}
    for item in params:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name or not values:
            raise _UsageError(f"--param must be NAME=V1,V2, got {item!r}")
        if name not in known:
            raise _UsageError(f"--param {name}: not a breaker setting; settings: "
                              f"{', '.join(known)}")
        parsed: list[Any] = []
        for text in values.split(","):
            try:
                parsed.append(json.loads(text))
            except ValueError:
                raise _UsageError(f"--param {name}: {text!r} is not a number") from None
        grid[name] = parsed
    return grid


def _phases(items: list[str]) -> list[tuple[str, float, float]] | None:
    if not items:
        return None
    phases = []
    for item in items:
        name, _, span = item.partition("=")
        start, _, end = span.partition(":")
        try:
            low, high = float(start), float(end)
        except ValueError:
            low = high = math.nan
        if not name or not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise _UsageError(f"--phase must be NAME=START:END with START < END seconds, "
                              f"got {item!r}")
        phases.append((name, low, high))
    return phases


def _read_config(path: Path) -> dict[str, Any]:
    from cblab import CircuitBreakerConfig, ConfigError
    from cblab.strict_json import read_json_file

    try:
        data = read_json_file(path)
    except (OSError, ValueError) as exc:
        raise _UsageError(f"--current {path}: {exc}") from None
    if not isinstance(data, dict):
        raise _UsageError(f"--current {path}: expected a JSON object of breaker settings")
    data.pop("excluded_exceptions", None)
    data.pop("is_excluded", None)
    try:
        CircuitBreakerConfig.from_dict(dict(data))
    except ConfigError as exc:
        raise _UsageError(f"--current {path}: {exc}") from None
    return data


def _read_input(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows and metadata of a run, a rows file, an OTLP JSON trace export, or Prometheus."""
    from cblab.runs import json_event_rows, read_event_rows
    from cblab.strict_json import read_json_file

    from .prometheus import rows_from_args
    from .spans import is_otlp, span_rows

    read = rows_from_args(args)
    if read is not None:
        return read
    path = args.run
    if path.is_file() and path.suffix == ".json":  # read once: a trace or rows
        try:
            data = read_json_file(path)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
        return (span_rows(data), {}) if is_otlp(data) else (json_event_rows(data, path), {})
    return read_event_rows(path)


def _fmt(mean: float, half: float, as_share: bool) -> str:
    spec = ".2%" if as_share else ".1f"
    if math.isnan(half):
        return f"{mean:{spec}}"
    return f"{mean:{spec}} ± {half:{spec}}"


def _check(args: argparse.Namespace) -> tuple[Any, dict[str, Any], str | float, Any]:
    """Every flag checked before any work: (objective, grid, warm-up, phases)."""
    from cblab.faults.cli import check_fit_options

    from .pick import Objective

    objective = Objective(args.objective, args.cost_failed, args.cost_wasted,
                          args.cost_refused, args.max_wasted)
    grid = _grid(args.param)
    warmup = check_fit_options(args)
    phases = _phases(args.phase)
    if not (math.isfinite(args.longer) and args.longer >= 1):
        raise _UsageError(f"--longer must be >= 1, got {args.longer!r}")
    for flag, path in (("-o", args.out), ("--table", args.table), ("--report", args.report)):
        if path is not None and not path.parent.is_dir():
            raise _UsageError(f"{flag} {path}: directory {path.parent} does not exist")
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise _UsageError(f"--report {args.report}: not a directory")
    if args.table is not None and args.table.suffix.lower() not in (".parquet", ".csv"):
        raise _UsageError(f"--table must end in .parquet or .csv, got {str(args.table)!r}")
    return objective, grid, warmup, phases


def _live(args: argparse.Namespace, token: str | None) -> tuple[dict[str, Any] | None, str | None]:
    """The current config (file, or a server's admin API) and the --apply URL."""
    from . import admin

    current = None
    if args.current is not None and args.current.startswith(("http://", "https://")):
        if not token:
            raise _UsageError(f"--current URL needs the server's admin token: --token T "
                              f"or ${TOKEN_ENV}")
        current = admin.get_config(admin.check_url(args.current, "--current"),
                                   args.breaker, token)
    elif args.current is not None:
        current = _read_config(Path(args.current))
    base_url = None
    if args.apply is not None:
        base_url = admin.check_url(args.apply)
        if not token:
            raise _UsageError(f"--apply needs the server's admin token: --token T or "
                              f"${TOKEN_ENV}")
        live = admin.get_config(base_url, args.breaker, token)  # reachable, token accepted
        if current is None:
            current = live
    return current, base_url


def main(argv: list[str] | None = None) -> int:
    from cblab.faults.cli import phases_for, say_phases
    from cblab.faults.fit import FitError

    from . import admin
    from .loop import tune
    from .verify import check_replay, check_verify, run_verification

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad flag (2, said in one line)
        return int(exc.code or 0)
    try:
        objective, grid, warmup, phases = _check(args)
        token = args.token or os.environ.get(TOKEN_ENV)
        current, base_url = _live(args, token)
        plan = check_verify(args, base_url, token)  # --verify: proxy and server reachable
        rows, meta = _read_input(args)
        if not rows:
            raise _UsageError(f"{args.run}: no rows")

        name = (args.run.stem if args.run else meta["prometheus"]["name"]) or "fitted"

        def started(fit: Any, variants: list[Any], size: int, deadline: float | None) -> None:
            if plan is not None:  # the replay's limits depend on the fit: refuse before the sweep
                check_replay(plan, fit.scenario(name))
            say_phases(fit, args, rows, deadline)
            print(f"fitted {len(fit.phases)} phase(s) from {args.run or args.prometheus}; "
                  f"searching {size} setting(s) x {len(variants)} variant(s) x {args.seeds} "
                  "seed(s)")

        result = tune(
            rows, meta, grid=grid, objective=objective, current=current,
            name=name,
            source=args.source, tool=args.tool, deadline_s=args.deadline, warmup=warmup,
            phases=phases_for(args.phases, phases, rows),
            variants=[v.strip() for v in args.variants.split(",") if v.strip()],
            longer=args.longer, seeds=args.seeds, search=args.search, trials=args.trials,
            executor=args.executor, workers=args.workers, scheduler=args.scheduler,
            max_runs=args.max_runs, max_sweep_calls=args.max_sweep_calls,
            progress=sys.stderr.isatty(), on_start=started)
    except (FitError, ValueError, OSError) as exc:  # TuneError, AdminError, SweepError too
        print(f"cblab tune: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the sweep has stopped its workers; nothing was written
        print("cblab tune: interrupted; nothing written or applied", file=sys.stderr)
        return 130
    _report(result.pick, result.current, objective, result.search)
    _write(args, result)
    if base_url is not None and token:
        try:
            status = admin.put_config(base_url, args.breaker, token, result.config)
        except admin.AdminError as exc:
            print(f"cblab tune: {exc}", file=sys.stderr)
            return 2
        print(f"applied to {base_url} breaker {args.breaker!r}: "
              f"{ {k: status['config'].get(k) for k in result.settings} }")
    if plan is not None:
        code, verification = run_verification(plan, result.fit.scenario(result.source),
                                              result.config, result.deadline_s)
        if verification is not None and args.report is not None:  # the report shows it too
            _write(args, dataclasses.replace(result, verification=verification),
                   report_only=True)
        return code
    return 0


def _write(args: argparse.Namespace, result: Any, report_only: bool = False) -> None:
    """-o, --table and --report (only --report: again, with the verification)."""
    if args.out is not None and not report_only:
        args.out.write_text(json.dumps(result.config, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}; serve it with "
              f"`cblab serve --{args.breaker}-config \"$(cat {args.out})\"`")
    if args.table is not None and not report_only:
        from cblab.sim.sweep import write_sweep

        write_sweep(result.table, args.table)
        print(f"wrote {args.table}: {len(result.table)} runs")
    if args.report is not None:
        from .report import write_tune_report

        page = write_tune_report(result, args.report)
        print(f"wrote {page}: the report of the loop (fit, sweep, pick)")


def _report(pick: Any, now: Any, objective: Any, meta: dict[str, Any]) -> None:
    share = objective.kind == "availability"
    print(f"\nrobust pick: {pick.setting}  ({objective.label}, mean ± 95 % CI over "
          f"{len(meta['seeds'])} seeds; worst variant decides)")
    width = max(len("variant"), *map(len, pick.per_variant))
    current = f"current {now.setting}"
    print(f"  {'variant':<{width}} {'pick':>20}  {current:>{max(len(current), 20)}}  "
          "wasted pick/current")
    for variant, (mean, half) in pick.per_variant.items():
        cur = now.per_variant[variant]
        print(f"  {variant:<{width}} {_fmt(mean, half, share):>20}  "
              f"{_fmt(cur[0], cur[1], share):>{max(len(current), 20)}}  "
              f"{pick.wasted[variant]:.1f}/{now.wasted[variant]:.1f}")
    gain = pick.robust - now.robust
    print(f"  worst case: {_fmt(pick.robust, math.nan, share)} vs {_fmt(now.robust, math.nan, share)}"
          f" ({'+' if gain >= 0 else ''}{gain:{'.2%' if share else '.1f'}}); "
          f"wasted calls in the worst variant {pick.worst_wasted:.1f} vs {now.worst_wasted:.1f}")
    print(f"  {meta['search']}: {meta['runs']} runs in {meta['wall_s']:.1f} s "
          f"({meta.get('executor', '?')})")
