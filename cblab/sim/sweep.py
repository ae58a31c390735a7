"""Sweep breaker settings over scenarios and seeds: on every core, or on a Dask cluster.

    from cblab.sim.sweep import sweep
    table = sweep({"failure_threshold": [3, 5, 10], "timeout": [5, 30]},
                  ["outage-and-recovery", "flapping"], seeds=range(5))
    table = sweep(grid, scenarios, 20, executor="dask", scheduler="tcp://10.0.0.5:8786")

One row per (grid point, scenario, seed), in that order (the last grid key varies
fastest, then scenarios, then seeds): the grid's values, `scenario`, `seed`,
then the run's KPIs (`cblab.analysis.KPI_COLUMNS`) and `calls`. The frame is the
same, row for row, whichever executor ran it and whether it came from the cache.
`table.attrs["sweep"]` holds the run's metadata (executor, workers, cache hits,
wall time, cblab version, the scenarios' specs); `write_sweep` / `read_sweep` keep
it in a Parquet file (or a JSON file next to a CSV).

How it runs:

- **cache**: each simulation's KPIs are looked up in a disk cache
  (`cblab.sim.cache.ResultCache`) first; only misses are computed, and each
  result is stored as its batch arrives, so an interrupted sweep resumes where
  it stopped;
- **batches**: a task is a batch of simulations, sized from a quick calibration
  (the first runs, their CPU time here) so that one batch takes about
  `TARGET_BATCH_S` and every worker gets several: per-task overhead stays small
  and progress moves. Runs of one scenario and seed are batched together and
  share their draws (`cblab.sim.model.Draws`: arrivals and backend plans);
- **executor**: `cblab.sim.executors` (this process, a process pool, Dask);
- **progress**: a `tqdm.auto` bar (a widget in a notebook, text in a terminal)
  moves per batch, with an ETA;
- **interrupt**: Ctrl-C (or the notebook's interrupt) cancels the outstanding
  batches and stops the processes the sweep started, then re-raises
  KeyboardInterrupt.
"""

from __future__ import annotations

import datetime as _dt
import itertools
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cblab import CircuitBreakerConfig, ConfigError
from cblab.faults.scenario import Scenario
from cblab.strict_json import read_json_file

from .bounds import (
    DEFAULT_MAX_CALLS,
    DEFAULT_MAX_RUNS,
    DEFAULT_MAX_SWEEP_CALLS,
    WorkLimitError,
    check_limit,
    expected_calls,
)
from .cache import ResultCache
from .executors import ExecutorError, resolve_executor
from .model import Draws
from .run import DEFAULT_DEADLINE_S, simulate
from .workload import load_phases, resolve_scenario

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "SIM_PARAMETERS",
    "TARGET_BATCH_S",
    "SweepError",
    "grid_points",
    "read_sweep",
    "sweep",
    "write_sweep",
]

#: Grid keys that set the simulation rather than the breaker.
SIM_PARAMETERS: tuple[str, ...] = ("deadline_s", "rate", "arrivals", "protected", "service")

#: CPU seconds one batch of simulations should take: long enough that a task's
#: overhead (about 1 ms on a quiet machine, tens of ms on a loaded one, more on a
#: remote cluster) and the shared draws (`Draws`, about one run's cost) are small
#: next to it, short enough that progress moves and the workers finish together.
TARGET_BATCH_S = 1.0

_CONFIG_FIELDS = tuple(
    name for name in CircuitBreakerConfig.__dataclass_fields__
    if name not in ("excluded_exceptions", "is_excluded")
)


class SweepError(ValueError):
    """A bad grid, scenario list, seed list or executor; the message says which."""


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cross product of `grid`'s values, in order (the last key varies fastest)."""
    values = _grid_values(grid)
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


def _grid_values(grid: Any) -> list[list[Any]]:
    """Each grid key's values, checked (known keys, non-empty lists)."""
    if not isinstance(grid, Mapping):
        raise SweepError(f"grid must map setting names to lists of values, got {grid!r}")
    unknown = [key for key in grid if key not in _CONFIG_FIELDS and key not in SIM_PARAMETERS]
    if unknown:
        raise SweepError(
            f"unknown grid key(s) {', '.join(map(repr, unknown))}; breaker settings: "
            f"{', '.join(_CONFIG_FIELDS)}; simulation settings: {', '.join(SIM_PARAMETERS)}"
        )
    values = []
    for key, options in grid.items():
        if isinstance(options, (str, bytes, Mapping)) or not isinstance(options, Iterable):
            raise SweepError(f"grid[{key!r}] must be a list of values, got {options!r}")
        options = list(options)
        if not options:
            raise SweepError(f"grid[{key!r}] is empty: the sweep would have no runs")
        values.append(options)
    return values


def _split(point: Mapping[str, Any], base: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    config = {**base, **{k: v for k, v in point.items() if k in _CONFIG_FIELDS}}
    sim = {k: v for k, v in point.items() if k in SIM_PARAMETERS}
    return config, sim


def _base_config(base: CircuitBreakerConfig | Mapping[str, Any] | None) -> dict[str, Any]:
    if base is None:
        return {}
    if isinstance(base, CircuitBreakerConfig):
        if base.excluded_exceptions or base.is_excluded is not None:
            raise SweepError("a sweep's base config cannot exclude exceptions (code is not data)")
        data = base.to_dict()
        data.pop("excluded_exceptions", None)
        return data
    if isinstance(base, Mapping):
        CircuitBreakerConfig.from_dict(dict(base))  # validate now, with a clear message
        return dict(base)
    raise SweepError(f"base must be a CircuitBreakerConfig, a dict or None, got {base!r}")


def _shown(value: Any) -> Any:
    """Grid values as table cells: dicts and lists (e.g. a policy) as JSON text."""
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(value, sort_keys=True)
    return value


def _scenarios(scenarios: Any) -> list[tuple[str, Scenario]]:
    if isinstance(scenarios, (str, Path, Scenario, Mapping)):
        scenarios = [scenarios]
    if not isinstance(scenarios, Iterable):
        raise SweepError(f"scenarios must be a scenario or a list of them, got {scenarios!r}")
    resolved = []
    for item in scenarios:
        scenario = resolve_scenario(item)  # ScenarioError (a ValueError) says what is wrong
        resolved.append((scenario.name, scenario))
    if not resolved:
        raise SweepError("no scenarios to sweep")
    names = [name for name, _ in resolved]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise SweepError(f"scenario name(s) {', '.join(map(repr, twice))} appear more than once: "
                         "rows would be ambiguous (give each scenario its own name)")
    return resolved


def _seeds(seeds: Any, most: int) -> list[int | str]:
    """The seed list; a count or a sized list is checked against `most` before it is
    built, and an iterator is read no further than one past `most`."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SweepError(f"seeds must be >= 1 (a count) or a list of seeds, got {seeds!r}")
        return list(range(min(seeds, most + 1)))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise SweepError(f"seeds must be a count or a list of int/str seeds, got {seeds!r}")
    seeds = list(itertools.islice(seeds, most + 1))
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, str))]
    if bad or not seeds:
        raise SweepError(f"seeds must be a non-empty list of int/str seeds, got {seeds!r}")
    return seeds


def _seed_count(seeds: Any) -> int | None:
    """How many seeds, when known without reading them (a count or a sized list)."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        return seeds
    if isinstance(seeds, Sized) and not isinstance(seeds, (str, bytes)):
        return len(seeds)
    return None


def _check_runs(points: int, scenarios: int, seeds: Any, max_runs: int) -> list[int | str]:
    """The seeds, once points x scenarios x seeds is known to be within `max_runs`
    (never building more of the seed list than the limit allows)."""
    per_seed = points * scenarios
    seed_list = _seeds(seeds, max(max_runs // per_seed, 1))
    known = _seed_count(seeds)
    count = known if known is not None else len(seed_list)
    if count * per_seed > max_runs:
        shown = f"{count:,}" if known is not None else f"at least {count:,}"
        raise WorkLimitError(
            f"the sweep has {points:,} grid point(s) x {scenarios} scenario(s) x {shown} "
            "seed(s) = {amount} runs", count * per_seed, "max_runs", max_runs)
    return seed_list


# --- what runs on a worker ---------------------------------------------------------------------

#: One simulation: (row index, full config, simulation options, scenario spec, seed,
#: max_calls).
Task = tuple[int, dict[str, Any], dict[str, Any], dict[str, Any], Any, int]


#: Inputs shared by a batch's runs of one scenario, seed and load: the scenario and
#: its `Draws` (arrivals and backend plans, the same whatever the breaker does).
Shared = dict[tuple[Any, ...], tuple[Scenario, Draws]]


def _run_task(task: Task, shared: Shared | None = None) -> dict[str, Any]:
    from cblab.analysis.kpis import run_kpis

    _index, config, options, scenario_data, seed, max_calls = task
    draws = None
    if shared is None:
        scenario = Scenario.from_dict(scenario_data)
    else:
        # the batch holds the spec (one object per scenario, however many tasks use it)
        key = (id(scenario_data), seed, options["rate"], options["arrivals"], options["service"])
        if key not in shared:
            scenario = Scenario.from_dict(scenario_data)
            phases = load_phases(scenario, rate=options["rate"], arrivals=options["arrivals"])
            shared[key] = scenario, Draws(scenario, phases, seed=seed, service=options["service"])
        scenario, draws = shared[key]
    run = simulate(scenario, config, seed=seed, max_calls=max_calls, draws=draws, **options)
    figures = run_kpis(run)
    figures["calls"] = run.calls
    return figures


def _run_batch(batch: list[Task]) -> list[tuple[int, dict[str, Any]]]:
    """A task: a batch of simulations (module level, so workers import it by name).
    Its runs of one scenario and seed share their draws (the sweep batches them so)."""
    shared: Shared = {}
    return [(task[0], _run_task(task, shared)) for task in batch]


# --- the sweep ---------------------------------------------------------------------------------


def _cache(cache: Any) -> ResultCache | None:
    if cache is None or cache is False:
        return None
    if cache is True:
        return ResultCache()
    if isinstance(cache, ResultCache):
        return cache
    if isinstance(cache, (str, Path)):
        return ResultCache(cache)
    raise SweepError(f"cache must be True, False, a directory or a ResultCache, got {cache!r}")


def _batch_size(per_run_s: float, pending: int, parallelism: int, per_worker: int) -> int:
    """Runs per batch: about TARGET_BATCH_S of work, yet at least `per_worker`
    batches for every worker (balance, progress, little lost with a worker)."""
    by_time = max(1, int(TARGET_BATCH_S / max(per_run_s, 1e-6)))
    by_spread = max(1, math.ceil(pending / (max(parallelism, 1) * max(per_worker, 1))))
    return min(by_time, by_spread)


def sweep(
    grid: Mapping[str, Sequence[Any]],
    scenarios: Any,
    seeds: Iterable[int | str] | int,
    *,
    base: CircuitBreakerConfig | Mapping[str, Any] | None = None,
    executor: Any = "local",
    workers: int | None = None,
    scheduler: Any = None,
    cache: Any = False,
    progress: bool = True,
    deadline_s: float = DEFAULT_DEADLINE_S,
    protected: bool = True,
    service: str = "users",
    rate: float | None = None,
    arrivals: str | None = None,
    batch_size: int | None = None,
    chunks_per_worker: int = 4,
    max_runs: int = DEFAULT_MAX_RUNS,
    max_calls: int = DEFAULT_MAX_CALLS,
    max_sweep_calls: int = DEFAULT_MAX_SWEEP_CALLS,
) -> pd.DataFrame:
    """Simulate every (grid point, scenario, seed) and tabulate the KPIs.

    grid       breaker setting -> values, e.g. {"failure_threshold": [3, 5, 10]};
               simulation settings (`SIM_PARAMETERS`) may be swept too
    scenarios  one scenario or a list (names, paths, `Scenario`s, dicts)
    seeds      a list of seeds, or a count n for seeds 0..n-1
    base       settings shared by every point (grid values override them)
    executor   "local" (a process pool of `workers`, default every core; 1 runs in
               this process), "dask" (a LocalCluster of `workers`, or the cluster at
               `scheduler`, e.g. "tcp://10.0.0.5:8786"), or an `Executor` /
               `distributed.Client` you keep open across sweeps
    cache      False (default), True (`ResultCache()`: $CBLAB_CACHE_DIR or
               ~/.cache/cblab/sweep), a directory, or a `ResultCache`
    progress   show a tqdm progress bar (per batch, with an ETA)
    batch_size runs per task (default: from a calibration of the first runs)
    max_runs, max_calls, max_sweep_calls
               work bounds (`cblab.sim.bounds`), checked before anything runs:
               grid points x scenarios x seeds, expected calls of one run, and of
               all runs together; past one, a WorkLimitError (a ValueError)

    The keyword settings (`deadline_s`, `protected`, ...) apply to every run
    unless the grid sweeps them.
    """
    import pandas as pd

    started = time.perf_counter()
    started_at = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    values = _grid_values(grid)
    for name, limit in (("max_runs", max_runs), ("max_calls", max_calls),
                        ("max_sweep_calls", max_sweep_calls)):
        check_limit(name, limit)
    base_config = _base_config(base)
    named = _scenarios(scenarios)
    seed_list = _check_runs(math.prod(map(len, values)), len(named), seeds, max_runs)
    points = [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int)
                                   or batch_size < 1):
        raise SweepError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    try:
        runner = resolve_executor(executor, workers=workers, scheduler=scheduler)
    except ExecutorError as exc:
        raise SweepError(str(exc)) from None
    store = _cache(cache)
    if store is not None:
        store.open()  # a directory that cannot be a cache says so now (CacheError)
    defaults = {"deadline_s": deadline_s, "protected": protected, "service": service,
                "rate": rate, "arrivals": arrivals}
    specs = [scenario.to_dict() for _, scenario in named]
    tasks: list[Task] = []
    labels = []
    total_calls = 0.0
    for point in points:
        config, sim_options = _split(point, base_config)
        try:
            full = CircuitBreakerConfig.from_dict(dict(config)).to_dict()
        except ConfigError as exc:
            raise SweepError(f"grid point {point}: {exc}") from None
        full.pop("excluded_exceptions", None)
        options = {**defaults, **sim_options}
        shown = {k: _shown(v) for k, v in point.items()}
        for (name, scenario), spec in zip(named, specs, strict=True):
            calls = _expected_calls(scenario, options, point)
            if calls > max_calls:
                raise WorkLimitError(
                    f"a run of {name!r} at {point} expects {{amount}} simulated calls "
                    "(rate x duration)", calls, "max_calls", max_calls)
            total_calls += calls * len(seed_list)
            for seed in seed_list:
                tasks.append((len(tasks), full, options, spec, seed, max_calls))
                labels.append({**shown, "scenario": name, "seed": seed})

    if total_calls > max_sweep_calls:
        raise WorkLimitError(f"the sweep's {len(tasks):,} runs expect {{amount}} simulated calls "
                             "in all", total_calls, "max_sweep_calls", max_sweep_calls)
    per_run: float | None = None
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    keys: list[str | None] = [None] * len(tasks)
    if store is not None:
        per_seed = len(seed_list)  # tasks come in runs of one (point, scenario), seed by seed
        for first in range(0, len(tasks), per_seed):
            _, full, options, spec, _, _ = tasks[first]
            keys[first:first + per_seed] = store.keys(spec, full, options, seed_list)
        for index, key in enumerate(keys):
            results[index] = store.get(key)  # type: ignore[arg-type]
    hits = sum(r is not None for r in results)
    meta: dict[str, Any] = {}

    def keep(index: int, figures: dict[str, Any]) -> None:
        results[index] = figures
        if store is not None:
            store.put(keys[index], figures)  # type: ignore[arg-type]

    with _progress_bar(len(tasks), hits, progress, runner.name) as bar:
        # runs of one scenario and seed next to each other, so that a batch's runs share
        # their draws (`_run_batch`); results go back to their rows by index
        order = {id(spec): i for i, spec in enumerate(specs)}
        seed_order = {seed: i for i, seed in enumerate(seed_list)}
        pending = sorted((task for task in tasks if results[task[0]] is None),
                         key=lambda task: (order[id(task[3])], seed_order[task[4]]))
        meta.update(runner.describe(), batch_size=0, batches=0)
        if pending:
            try:
                runner.__enter__()  # first, so an unreachable scheduler fails fast
            except ExecutorError as exc:
                raise SweepError(str(exc)) from None
            with _closing(runner):
                if batch_size is None:
                    # Calibrate on the first runs (here, and kept): the faster of two is the
                    # estimate of one run's cost. CPU time of this thread, not wall time:
                    # on a busy machine wall time says more about the other processes.
                    times = []
                    calibration: Shared = {}  # as in a batch: the second run shares draws
                    for task in pending[:2]:
                        t0 = time.thread_time()
                        keep(task[0], _run_task(task, calibration))
                        times.append(time.thread_time() - t0)
                        bar.update(1)
                    pending = pending[2:]
                    per_run = min(times)
                size = batch_size or _batch_size(per_run or TARGET_BATCH_S, len(pending),
                                                 runner.parallelism, chunks_per_worker)
                batches = [pending[i:i + size] for i in range(0, len(pending), size)]
                meta.update(runner.describe(), batch_size=size, batches=len(batches))
                try:
                    for _, done in runner.run(_run_batch, batches):
                        for index, figures in done:
                            keep(index, figures)
                        bar.update(len(done))
                except ExecutorError as exc:
                    kept = "; finished runs are in the cache" if store is not None else ""
                    raise SweepError(f"{exc}{kept}") from None
    if store is not None and store.written:
        store.prune()  # only a sweep that added entries can have outgrown the cap
    rows = [{**label, **(figures or {})} for label, figures in zip(labels, results, strict=True)]
    table = pd.DataFrame(rows)
    from cblab import __version__

    table.attrs["sweep"] = {
        "cblab_version": __version__,
        "started_utc": started_at,
        "wall_s": round(time.perf_counter() - started, 3),
        "runs": len(tasks),
        "cached": hits,
        "computed": len(tasks) - hits,
        "calibration_s_per_run": per_run,
        **meta,
        "grid": {k: [_shown(v) for v in vs] for k, vs in grid.items()},
        "base": base_config,
        "options": defaults,
        "seeds": seed_list,
        "scenarios": dict(zip((n for n, _ in named), specs, strict=True)),
        "cache": str(store.path) if store is not None else None,
    }
    return table


def _expected_calls(scenario: Scenario, options: Mapping[str, Any], point: Any) -> float:
    try:
        phases = load_phases(scenario, rate=options["rate"], arrivals=options["arrivals"])
    except ValueError as exc:  # a bad rate or arrivals in the grid, said before anything runs
        raise SweepError(f"grid point {point}: {exc}") from None
    return expected_calls(phases)


class _closing:
    """Exit an already entered executor, telling it whether we leave by an exception."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        self.runner.__exit__(*exc)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        pass


def _progress_bar(total: int, initial: int, enabled: bool, executor: str) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=f"sweep ({executor})", unit="run",
                postfix={"cached": initial} if initial else None)


# --- files -------------------------------------------------------------------------------------


def _meta_file(path: Path) -> Path:
    return path.with_name(path.name + ".meta.json")


def write_sweep(table: pd.DataFrame, path: str | Path) -> Path:
    """Write a sweep table as Parquet (`.parquet`, metadata inside) or CSV (`.csv`, metadata
    in `<name>.meta.json` beside it). Written to a temporary file and renamed, so an
    interrupted write never leaves a partial file under `path`."""
    path = Path(path)
    kind = path.suffix.lower()
    if kind not in (".parquet", ".csv"):
        raise SweepError(f"output must end in .parquet or .csv, got {str(path)!r}")
    frame = table.copy()
    for column in frame.columns:  # Parquet needs one type per column (e.g. int and str seeds)
        if frame[column].dtype == object and frame[column].map(type).nunique() > 1:
            frame[column] = frame[column].astype(str)
    meta = json.dumps(table.attrs.get("sweep", {}), default=str, indent=1)
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".",
                               prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        if kind == ".parquet":
            frame.to_parquet(tmp, index=False)
        else:
            frame.to_csv(tmp, index=False)
            _meta_file(path).write_text(meta + "\n", encoding="utf-8")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def read_sweep(path: str | Path) -> pd.DataFrame:
    """A table written by `write_sweep` (or `cblab sweep -o`), with its `attrs["sweep"]`."""
    import pandas as pd

    path = Path(path)
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path)
    table = pd.read_csv(path)
    meta = _meta_file(path)
    if meta.exists():
        table.attrs["sweep"] = read_json_file(meta)
    return table
