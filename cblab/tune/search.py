"""Search the settings: the whole grid when it is small, optuna's TPE sampler when not.

Either way every setting tried is swept over the same variants and seeds
(`cblab.sim.sweep.sweep`, its work bounds checked per sweep) and scored with
`cblab.tune.pick.score_points`; the pick is made from the settings tried.

- ``grid``: one sweep of the cross product (every point);
- ``optuna``: `trials` settings drawn from the grid's values (categorical, so every
  trial is a grid point) by a seeded TPE sampler, each swept on its own; a setting
  that breaks `max_wasted` scores as the worst possible, so the sampler moves away;
- ``auto``: the grid up to `GRID_LIMIT` points, optuna beyond.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from .pick import Objective, PointScore, TuneError, score_points

__all__ = ["GRID_LIMIT", "search"]

#: Grid points up to which `auto` sweeps the whole grid.
GRID_LIMIT = 200


def _grid(grid: Mapping[str, Sequence[Any]], variants: list[dict[str, Any]], seeds: int,
          objective: Objective, options: dict[str, Any]) -> tuple[list[PointScore], dict[str, Any]]:
    from cblab.sim.sweep import sweep

    table = sweep(grid, variants, seeds, **options)
    meta = dict(table.attrs["sweep"], search="grid", table=table)
    return score_points(table, list(grid), objective), meta


def _optuna(grid: Mapping[str, Sequence[Any]], variants: list[dict[str, Any]], seeds: int,
            objective: Objective, options: dict[str, Any], trials: int,
            sampler_seed: int) -> tuple[list[PointScore], dict[str, Any]]:
    try:
        import optuna
    except ImportError:
        raise TuneError("--search optuna needs optuna: pip install 'cblab[tune]'") from None
    from cblab.sim.sweep import sweep

    runs_needed = trials * len(variants) * seeds
    most = options.get("max_runs")
    if most is not None and runs_needed > most:
        raise TuneError(f"the search has {trials} trial(s) x {len(variants)} variant(s) x "
                        f"{seeds} seed(s) = {runs_needed:,} runs, over --max-runs {most:,}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    started = time.perf_counter()
    tried: dict[tuple[Any, ...], PointScore] = {}
    tables = []
    runs = 0

    def trial_score(trial: Any) -> float:
        nonlocal runs
        point = {k: trial.suggest_categorical(k, list(v)) for k, v in grid.items()}
        key = tuple(point.values())
        if key not in tried:
            table = sweep({k: [v] for k, v in point.items()}, variants, seeds, **options)
            runs += len(table)
            tables.append(table)
            tried[key] = score_points(table, list(grid), objective)[0]
        score = tried[key]
        if objective.max_wasted is not None and score.worst_wasted > objective.max_wasted:
            return -1e300 if objective.higher_is_better else 1e300  # worse than any setting
        return score.robust

    study = optuna.create_study(
        direction="maximize" if objective.higher_is_better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=sampler_seed))
    study.optimize(trial_score, n_trials=trials)
    import pandas as pd

    meta = {"search": "optuna", "trials": trials, "table": pd.concat(tables, ignore_index=True), "runs": runs, "points": len(tried),
            "wall_s": round(time.perf_counter() - started, 3),
            "executor": getattr(options.get("executor"), "name", options.get("executor")),
            "seeds": list(range(seeds))}
    return list(tried.values()), meta


def search(grid: Mapping[str, Sequence[Any]], variants: list[dict[str, Any]], seeds: int,
           objective: Objective, options: dict[str, Any], *, method: str = "auto",
           trials: int = 60, sampler_seed: int = 0) -> tuple[list[PointScore], dict[str, Any]]:
    """The settings tried, scored, and the search's metadata (runs, wall_s, ...; `table`:
    every run's row, as `cblab.sim.sweep.sweep` gives them)."""
    if method not in ("auto", "grid", "optuna"):
        raise TuneError(f"search must be auto, grid or optuna, got {method!r}")
    points = math.prod(len(v) for v in grid.values())
    if method == "grid" or (method == "auto" and points <= GRID_LIMIT):
        return _grid(grid, variants, seeds, objective, options)
    return _optuna(grid, variants, seeds, objective, options, trials, sampler_seed)
