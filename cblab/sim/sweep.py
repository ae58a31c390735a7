"""Sweep breaker settings over scenarios and seeds, on every core.

    from cblab.sim.sweep import sweep
    table = sweep({"failure_threshold": [3, 5, 10], "timeout": [5, 30]},
                  ["outage-and-recovery", "flapping"], seeds=range(5))

One row per (grid point, scenario, seed): the grid's values, `scenario`,
`seed`, then the run's KPIs (`cblab.analysis.KPI_COLUMNS`), `calls` and `wall_s`.
Runs are spread over a `ProcessPoolExecutor` in chunks (a few per worker, so the
per-task overhead stays small); progress shows with `tqdm.auto` (a widget in a
notebook, a text bar in a terminal).
"""

from __future__ import annotations

import itertools
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cblab import CircuitBreakerConfig, ConfigError
from cblab.faults.scenario import Scenario

from .run import DEFAULT_DEADLINE_S, simulate
from .workload import resolve_scenario

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SIM_PARAMETERS", "SweepError", "grid_points", "sweep"]

#: Grid keys that set the simulation rather than the breaker.
SIM_PARAMETERS: tuple[str, ...] = ("deadline_s", "rate", "arrivals", "protected", "service")

_CONFIG_FIELDS = tuple(
    name for name in CircuitBreakerConfig.__dataclass_fields__
    if name not in ("excluded_exceptions", "is_excluded")
)


class SweepError(ValueError):
    """A bad grid, scenario list or seed list; the message says which."""


def grid_points(grid: Mapping[str, Sequence[Any]]) -> list[dict[str, Any]]:
    """The cross product of `grid`'s values, in order (the last key varies fastest)."""
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
    return [dict(zip(grid, combo, strict=True)) for combo in itertools.product(*values)]


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


def _run_task(task: tuple[dict[str, Any], dict[str, Any], str, Any, dict[str, Any]]) -> dict[str, Any]:
    from cblab.analysis.kpis import run_kpis

    config, sim_options, _name, seed, scenario_data = task
    scenario = Scenario.from_dict(scenario_data)
    run = simulate(scenario, config, seed=seed, **sim_options)
    figures = run_kpis(run)
    figures["calls"] = run.calls
    figures["wall_s"] = run.wall_s
    return figures


def _run_chunk(chunk: list[tuple[int, tuple[Any, ...]]]) -> list[tuple[int, dict[str, Any]]]:
    return [(index, _run_task(task)) for index, task in chunk]


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
    return resolved


def _seeds(seeds: Any) -> list[int | str]:
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise SweepError(f"seeds must be >= 1 (a count) or a list of seeds, got {seeds!r}")
        return list(range(seeds))
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise SweepError(f"seeds must be a count or a list of int/str seeds, got {seeds!r}")
    seeds = list(seeds)
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, (int, str))]
    if bad or not seeds:
        raise SweepError(f"seeds must be a non-empty list of int/str seeds, got {seeds!r}")
    return seeds


def sweep(
    grid: Mapping[str, Sequence[Any]],
    scenarios: Any,
    seeds: Iterable[int | str] | int,
    *,
    base: CircuitBreakerConfig | Mapping[str, Any] | None = None,
    workers: int | None = None,
    progress: bool = True,
    deadline_s: float = DEFAULT_DEADLINE_S,
    protected: bool = True,
    service: str = "users",
    rate: float | None = None,
    chunks_per_worker: int = 4,
) -> pd.DataFrame:
    """Simulate every (grid point, scenario, seed) and tabulate the KPIs.

    grid       breaker setting -> values, e.g. {"failure_threshold": [3, 5, 10]};
               simulation settings (`SIM_PARAMETERS`) may be swept too
    scenarios  one scenario or a list (names, paths, `Scenario`s, dicts)
    seeds      a list of seeds, or a count n for seeds 0..n-1
    base       settings shared by every point (grid values override them)
    workers    processes (default: all cores); 1 runs in this process
    progress   show a tqdm progress bar

    The keyword settings (`deadline_s`, `protected`, ...) apply to every run
    unless the grid sweeps them.
    """
    import pandas as pd

    points = grid_points(grid)
    base_config = _base_config(base)
    named = _scenarios(scenarios)
    seed_list = _seeds(seeds)
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise SweepError(f"workers must be an integer >= 1, got {workers!r}")
    defaults = {"deadline_s": deadline_s, "protected": protected, "service": service, "rate": rate}
    tasks = []
    labels = []
    data = {name: scenario.to_dict() for name, scenario in named}
    for point in points:
        config, sim_options = _split(point, base_config)
        try:
            CircuitBreakerConfig.from_dict(dict(config))
        except ConfigError as exc:
            raise SweepError(f"grid point {point}: {exc}") from None
        options = {**defaults, **sim_options}
        for name, _ in named:
            for seed in seed_list:
                tasks.append((config, options, name, seed, data[name]))
                labels.append({**{k: _shown(v) for k, v in point.items()},
                               "scenario": name, "seed": seed})
    results: list[dict[str, Any] | None] = [None] * len(tasks)
    indexed = list(enumerate(tasks))
    with _progress_bar(len(tasks), progress) as bar:
        if workers == 1 or len(tasks) == 1:
            for index, task in indexed:
                results[index] = _run_task(task)
                bar.update(1)
        else:
            size = max(1, math.ceil(len(tasks) / (workers * max(1, chunks_per_worker))))
            chunks = [indexed[i:i + size] for i in range(0, len(indexed), size)]
            with ProcessPoolExecutor(max_workers=min(workers, len(chunks))) as pool:
                futures = {pool.submit(_run_chunk, chunk): len(chunk) for chunk in chunks}
                for future in as_completed(futures):
                    for index, figures in future.result():
                        results[index] = figures
                    bar.update(futures[future])
    rows = [{**label, **figures} for label, figures in zip(labels, results, strict=True)]
    return pd.DataFrame(rows)


class _NoBar:
    def __enter__(self) -> _NoBar:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, n: int) -> None:
        pass


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sweep", unit="run")
