"""The tuning loop as one library call: rows in, a config and the evidence for it out.

    from cblab.runs import read_event_rows
    from cblab.tune import Objective, repick, tune

    rows, meta = read_event_rows("runs/my-server")
    result = tune(rows, meta, objective=Objective("cost", cost_wasted=5))
    result.config                       # the pick, for CircuitBreakerConfig.from_dict
    cheaper = repick(result, Objective("cost", cost_wasted=20))   # no new simulation

`tune` fits the rows (`cblab.faults.fit`), builds stress variants of the fitted
profile (`cblab.tune.variants`), searches the settings (`cblab.tune.search`),
picks the setting whose worst variant is best (`cblab.tune.pick`) and scores the
current config on the same variants and seeds. `repick` re-scores the simulated
tables under another objective: the simulated runs do not depend on the
objective, only their scores do, so it costs a group-by, not a sweep.

The tables behind the figures (`pick_table`, `objective_grid`, `fit_quality_table`)
are defined here once; `cblab.tune.figures` draws them, for the report and the
notebook alike.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .pick import Objective, PointScore, TuneError, robust_pick, score_points
from .variants import VARIANTS

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

    from cblab.faults.fit import RunFit

__all__ = ["DEFAULT_GRID", "TuneResult", "fit_quality_table", "objective_grid", "pick_table",
           "repick", "tune"]

#: The settings `tune` searches when given no grid.
DEFAULT_GRID: dict[str, list[Any]] = {
    "failure_threshold": [3, 5, 10, 20],
    "timeout": [5.0, 15.0, 30.0, 60.0],
}
_NOT_SETTINGS = ("excluded_exceptions", "is_excluded")


@dataclass(frozen=True)
class TuneResult:
    """Everything the loop found. `points` are the settings tried, scored; `table`
    holds every simulated run of them, `current_table` those of the current config."""

    source: str
    fit: RunFit
    deadline_s: float
    variants: list[dict[str, Any]]
    objective: Objective
    grid: dict[str, list[Any]]
    points: list[PointScore]
    table: pd.DataFrame
    pick: PointScore
    base: dict[str, Any]          # the current config (settings not searched keep these)
    current: PointScore
    current_table: pd.DataFrame
    config: dict[str, Any]        # the pick as a config dict (CircuitBreakerConfig.from_dict)
    search: dict[str, Any]        # how the settings were searched: method, runs, wall_s...
    timings: dict[str, float]     # seconds: fit, search, current, total
    verification: Any = field(default=None)  # set by `cblab tune --verify`

    @property
    def settings(self) -> list[str]:
        """The searched settings, in the grid's order (the first two are the heatmaps')."""
        return list(self.grid)

    @property
    def variant_names(self) -> list[str]:
        return [str(v) for v in self.table["scenario"].unique()]

    @property
    def seeds(self) -> int:
        return int(self.table["seed"].nunique())

    def repick(self, **weights: Any) -> TuneResult:
        """`repick` with some of the objective's fields changed (e.g. cost_wasted=5)."""
        return repick(self, dataclasses.replace(self.objective, **weights))

    def pick_table(self) -> pd.DataFrame:
        return pick_table(self)

    def objective_grid(self, variant: str | None = None) -> pd.DataFrame:
        return objective_grid(self, variant)

    def heatmap_figure(self) -> go.Figure:
        from .figures import heatmap_figure

        return heatmap_figure(self)


def _config(base: Mapping[str, Any], setting: Mapping[str, Any]) -> dict[str, Any]:
    from cblab import CircuitBreakerConfig

    config = CircuitBreakerConfig.from_dict({**base, **setting}).to_dict()
    for name in _NOT_SETTINGS:
        config.pop(name, None)
    return config


def _current_setting(base: Mapping[str, Any], settings: Sequence[str]) -> dict[str, Any]:
    from cblab import CircuitBreakerConfig

    default = CircuitBreakerConfig()
    return {k: base.get(k, getattr(default, k)) for k in settings}


def tune(
    rows: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any] | None = None,
    *,
    grid: Mapping[str, Sequence[Any]] | None = None,
    objective: Objective | None = None,
    current: Mapping[str, Any] | None = None,
    name: str = "fitted",
    source: str | None = "auto",
    tool: str | None = None,
    deadline_s: float | None = None,
    warmup: str | float = "auto",
    phases: Sequence[tuple[str, float, float]] | str | None = None,
    variants: Sequence[str] = VARIANTS,
    longer: float = 3.0,
    seeds: int = 5,
    search: str = "auto",
    trials: int = 60,
    executor: Any = "local",
    workers: int | None = None,
    scheduler: Any = None,
    max_runs: int | None = None,
    max_sweep_calls: int | None = None,
    progress: bool = False,
    on_start: Any = None,
) -> TuneResult:
    """Fit `rows`, stress, search, pick; score `current` (default: the library defaults).

    rows, meta   call rows and the run's metadata (`cblab.runs.read_event_rows`); the
                 metadata's ``extra.deadline_s`` is the deadline unless `deadline_s`
    source       rows of this source only; "auto": "load" when there are load rows
    grid         setting -> values to try (default `DEFAULT_GRID`)
    executor     "local", "dask" or an executor (`cblab.sim.executors`), started once
                 for every sweep of the call
    phases       ``[(name, start_s, end_s), ...]``, "auto" (found by change-point
                 detection), or None: the rows' phase labels, else one phase
                 (`cblab.faults.fit.fit_run`)
    on_start     called with (fit, variants, settings to try, deadline_s) before the
                 search (the CLI prints the phases and its "searching ..." line)

    Raises FitError, TuneError, ValueError (bad input, with the reason) before any sweep.
    """
    from cblab.faults.fit import fit_run
    from cblab.sim.bounds import DEFAULT_MAX_RUNS, DEFAULT_MAX_SWEEP_CALLS
    from cblab.sim.executors import resolve_executor
    from cblab.sim.run import DEFAULT_DEADLINE_S
    from cblab.sim.sweep import sweep

    from .search import search as run_search
    from .variants import stress_variants

    started = time.perf_counter()
    objective = objective if objective is not None else Objective()
    space: dict[str, list[Any]] = {
        k: list(v) for k, v in (grid if grid is not None else DEFAULT_GRID).items()}
    if not space or any(not v for v in space.values()):
        raise TuneError("the grid needs at least one setting, each with at least one value")
    if not (math.isfinite(longer) and longer >= 1):
        raise TuneError(f"longer must be >= 1, got {longer!r}")
    if seeds < 1:
        raise TuneError(f"seeds must be >= 1, got {seeds!r}")
    rows = list(rows)
    if not rows:
        raise TuneError("no rows")
    if source == "auto":
        source = "load" if any(r.get("source") == "load" for r in rows) else None
    if deadline_s is None:
        deadline_s = ((meta or {}).get("extra") or {}).get("deadline_s")
    fit = fit_run(rows, source=source, tool=tool, deadline_s=deadline_s, warmup=warmup,
                  phases=phases)
    deadline = float(deadline_s or DEFAULT_DEADLINE_S)
    scenarios = stress_variants(fit.scenario(name), longer=longer, deadline_s=deadline,
                                names=list(variants))
    fitted = time.perf_counter()
    base = {k: v for k, v in (current or {}).items() if k not in _NOT_SETTINGS}
    settings = list(space)
    if on_start is not None:
        on_start(fit, scenarios, math.prod(len(v) for v in space.values()), deadline_s)
    runner = resolve_executor(executor, workers=workers, scheduler=scheduler)
    options: dict[str, Any] = dict(
        base=base, executor=runner, progress=progress, deadline_s=deadline,
        max_runs=max_runs or DEFAULT_MAX_RUNS,
        max_sweep_calls=max_sweep_calls or DEFAULT_MAX_SWEEP_CALLS)
    with runner:  # one pool (or cluster) for every sweep of the call
        points, meta_search = run_search(space, scenarios, seeds, objective, options,
                                         method=search, trials=trials)
        pick = robust_pick(points, objective)
        searched = time.perf_counter()
        now_grid = {k: [v] for k, v in _current_setting(base, settings).items()}
        current_table = sweep(now_grid, scenarios, seeds, **options)
    done = time.perf_counter()
    table = meta_search.pop("table")
    now = score_points(current_table, settings, objective)[0]
    return TuneResult(
        source=name, fit=fit, deadline_s=deadline, variants=scenarios, objective=objective,
        grid=space, points=points, table=table, pick=pick, base=base, current=now,
        current_table=current_table, config=_config(base, pick.setting), search=meta_search,
        timings={"fit": round(fitted - started, 3), "search": round(searched - fitted, 3),
                 "current": round(done - searched, 3), "total": round(done - started, 3)})


def _bare(table: pd.DataFrame) -> pd.DataFrame:
    """The table without its `attrs` (the sweep's metadata, every scenario in it): pandas
    deep-copies attrs on every operation, which made scoring 150 runs take 0.25 s."""
    bare = table.copy(deep=False)
    bare.attrs = {}
    return bare


def repick(result: TuneResult, objective: Objective) -> TuneResult:
    """`result` scored and picked again under `objective`, from the runs already
    simulated (TuneError when no setting meets its `max_wasted`)."""
    settings = result.settings
    points = score_points(_bare(result.table), settings, objective)
    pick = robust_pick(points, objective)
    now = score_points(_bare(result.current_table), settings, objective)[0]
    return dataclasses.replace(result, objective=objective, points=points, pick=pick,
                               current=now, config=_config(result.base, pick.setting))


def _ci(mean: float, half: float) -> tuple[float, float]:
    return (mean, mean) if math.isnan(half) else (mean - half, mean + half)


def pick_table(result: TuneResult) -> pd.DataFrame:
    """The pick against the current config, per variant and for the worst case:
    the objective's mean and 95 % CI over seeds, and the mean wasted calls."""
    import pandas as pd

    pick, now = result.pick, result.current
    rows = []
    for variant in pick.per_variant:
        row: dict[str, Any] = {"variant": variant}
        for who, score in (("pick", pick), ("current", now)):
            mean, half = score.per_variant[variant]
            row[f"{who}"] = mean
            row[f"{who}_low"], row[f"{who}_high"] = _ci(mean, half)
        for who, score in (("pick", pick), ("current", now)):
            row[f"{who}_wasted"] = score.wasted[variant]
        rows.append(row)
    worst: dict[str, Any] = {"variant": "worst case"}
    for who, score in (("pick", pick), ("current", now)):
        mean, half = score.per_variant[score.worst_variant]
        worst[who] = mean
        worst[f"{who}_low"], worst[f"{who}_high"] = _ci(mean, half)
    worst["pick_wasted"], worst["current_wasted"] = pick.worst_wasted, now.worst_wasted
    rows.append(worst)
    return pd.DataFrame(rows).set_index("variant")


def objective_grid(result: TuneResult, variant: str | None = None) -> pd.DataFrame:
    """The objective's mean over seeds across the first two settings: rows the first
    setting's values, columns the second's (one column "" with one setting).

    `variant` None gives each setting's worst variant (its robust score). Settings
    that break `max_wasted` and settings not tried (optuna) are NaN; with more than
    two settings, each cell holds the best over the others."""
    import pandas as pd

    objective = result.objective
    settings = result.settings
    y_name = settings[0]
    x_name = settings[1] if len(settings) > 1 else None
    best: dict[tuple[Any, Any], float] = {}
    for point in result.points:
        if objective.max_wasted is not None and point.worst_wasted > objective.max_wasted:
            continue
        value = point.robust if variant is None else point.per_variant[variant][0]
        key = (point.setting[y_name], point.setting[x_name] if x_name else "")
        old = best.get(key)
        if old is None or (value > old if objective.higher_is_better else value < old):
            best[key] = value
    columns = result.grid[x_name] if x_name else [""]
    frame = pd.DataFrame(math.nan, index=pd.Index(result.grid[y_name], name=y_name),
                         columns=pd.Index(columns, name=x_name or ""), dtype=float)
    for (y, x), value in best.items():
        frame.loc[y, x] = value
    return frame


def fit_quality_table(result: TuneResult) -> pd.DataFrame:
    """Per phase and latency quantile (of the answered calls), the observed and the
    fitted milliseconds (`cblab.faults.fit.PhaseFit.quality`)."""
    import pandas as pd

    rows = []
    for phase in result.fit.phases:
        q = phase.quality()
        for tag in ("p50", "p90", "p99"):
            if f"{tag}_ms_observed" in q:
                rows.append({"phase": phase.name, "quantile": tag,
                             "observed_ms": q[f"{tag}_ms_observed"],
                             "fitted_ms": q[f"{tag}_ms_fitted"]})
    return pd.DataFrame(rows, columns=["phase", "quantile", "observed_ms", "fitted_ms"])
