"""`cblab.tune.loop`: the loop as a library call, and `repick` on its simulated runs.

Every expected number is recomputed here from the runs' table with pandas, not
with the code under test (`score_points`, `robust_pick`, `objective_grid`)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
import pytest

from cblab import CircuitBreakerConfig
from cblab.faults.fit import FitError
from cblab.tune import Objective, TuneError, repick, tune
from cblab.tune.loop import fit_quality_table, objective_grid

from .traffic import PROFILE, crafted_rows

GRID = {"failure_threshold": [3, 10], "timeout": [5.0, 30.0]}
CURRENT = {"failure_threshold": 20, "timeout": 60.0, "success_threshold": 1}


@pytest.fixture(scope="module")
def result() -> Any:
    return tune(crafted_rows(), {}, grid=GRID, seeds=3, workers=1, current=CURRENT,
                name="crafted", variants=["observed", "longer", "flapping"])


def _cost(frame: pd.DataFrame, failed: float, wasted: float, refused: float) -> pd.Series:
    return 1000.0 * (failed * frame["failed"] + wasted * frame["wasted"]
                     + refused * frame["rejected"]) / frame["requested"].clip(lower=1)


def _brute_force(table: pd.DataFrame, values: pd.Series, higher: bool,
                 max_wasted: float | None = None) -> dict[str, Any]:
    """The setting whose worst variant's mean is best (ties: fewer wasted calls)."""
    frame = table.assign(_v=values)
    means = frame.groupby(["failure_threshold", "timeout", "scenario"])[["_v", "wasted"]].mean()
    best_key, best = None, None
    for key, group in means.groupby(level=[0, 1]):
        worst = group["_v"].min() if higher else group["_v"].max()
        worst_wasted = group["wasted"].max()
        if max_wasted is not None and worst_wasted > max_wasted:
            continue
        rank = (-worst if higher else worst, worst_wasted)
        if best is None or rank < best:
            best_key, best = key, rank
    assert best_key is not None
    return {"failure_threshold": int(best_key[0]), "timeout": float(best_key[1])}


def test_the_loop_fits_sweeps_and_picks_the_brute_force_optimum(result: Any) -> None:
    assert [p.name for p in result.fit.phases] == [name for name, *_ in PROFILE]
    assert result.variant_names == ["crafted-observed", "crafted-longer", "crafted-flapping"]
    assert len(result.table) == 4 * 3 * 3  # settings x variants x seeds
    assert len(result.points) == 4 and result.search["search"] == "grid"
    assert result.pick.setting == _brute_force(result.table, result.table["availability"], True)
    # the written config: the pick over the current config's other settings
    config = CircuitBreakerConfig.from_dict(result.config)
    assert (config.failure_threshold, config.timeout) == (
        result.pick.setting["failure_threshold"], result.pick.setting["timeout"])
    assert config.success_threshold == 1
    assert set(result.timings) == {"fit", "search", "current", "total"}
    assert result.timings["total"] >= result.timings["search"] > 0


def test_the_current_config_is_scored_on_the_same_variants_and_seeds(result: Any) -> None:
    now = result.current_table
    assert set(now["failure_threshold"]) == {20} and set(now["timeout"]) == {60.0}
    assert sorted(now["scenario"].unique()) == sorted(result.variant_names)
    assert sorted(now["seed"].unique()) == sorted(result.table["seed"].unique())
    worst = now.groupby("scenario")["availability"].mean().min()
    assert result.current.robust == pytest.approx(worst)
    assert result.current.setting == {"failure_threshold": 20, "timeout": 60.0}


@pytest.mark.parametrize("weights", [dict(cost_failed=1.0, cost_wasted=1.0, cost_refused=0.0),
                                     dict(cost_failed=0.0, cost_wasted=0.0, cost_refused=5.0),
                                     dict(cost_failed=10.0, cost_wasted=50.0, cost_refused=1.0)])
def test_repick_rescores_the_simulated_runs_without_simulating(result: Any,
                                                               weights: dict[str, float]) -> None:
    again = repick(result, Objective("cost", **weights))
    assert again.table is result.table and again.current_table is result.current_table
    values = _cost(result.table, weights["cost_failed"], weights["cost_wasted"],
                   weights["cost_refused"])
    assert again.pick.setting == _brute_force(result.table, values, False)
    now = _cost(result.current_table, weights["cost_failed"], weights["cost_wasted"],
                weights["cost_refused"])
    assert again.current.robust == pytest.approx(
        result.current_table.assign(_v=now).groupby("scenario")["_v"].mean().max())
    assert again.config["failure_threshold"] == again.pick.setting["failure_threshold"]
    assert result.objective.kind == "availability"  # the original is untouched


def test_repick_honours_max_wasted_and_says_when_nothing_meets_it(result: Any) -> None:
    wasted = result.table.groupby(["failure_threshold", "timeout", "scenario"])["wasted"].mean()
    worst = wasted.groupby(level=[0, 1]).max()
    limit = float(worst.median())
    again = result.repick(max_wasted=limit)
    assert again.pick.setting == _brute_force(result.table, result.table["availability"], True,
                                              max_wasted=limit)
    assert again.pick.worst_wasted <= limit
    assert worst.min() > 1  # an outage: every setting sends some calls into it
    with pytest.raises(TuneError, match="no setting keeps wasted calls at most"):
        result.repick(max_wasted=float(worst.min()) - 1)


def test_the_heatmap_grid_is_the_mean_objective_per_setting(result: Any) -> None:
    means = result.table.groupby(["failure_threshold", "timeout", "scenario"])[
        "availability"].mean()
    for variant in result.variant_names:
        grid = objective_grid(result, variant)
        assert list(grid.index) == GRID["failure_threshold"]
        assert list(grid.columns) == GRID["timeout"]
        for ft in GRID["failure_threshold"]:
            for timeout in GRID["timeout"]:
                assert grid.loc[ft, timeout] == pytest.approx(means[(ft, timeout, variant)])
    worst = objective_grid(result)
    assert worst.loc[3, 5.0] == pytest.approx(means.loc[(3, 5.0)].min())
    # the heatmap figure draws exactly these numbers, the pick marked
    fig = result.heatmap_figure()
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert [t.name for t in heat] == ["worst variant", *result.variant_names]
    drawn = [value for row in heat[0].z for value in row]
    assert drawn == pytest.approx(worst.to_numpy().ravel().tolist())
    marks = [t for t in fig.data if t.type == "scatter"]
    assert {(m.x[0], m.y[0]) for m in marks} == {
        (f"{result.pick.setting['timeout']:g}", str(result.pick.setting["failure_threshold"]))}


def test_settings_over_max_wasted_are_blank_in_the_heatmap(result: Any) -> None:
    worst = result.table.groupby(["failure_threshold", "timeout", "scenario"])[
        "wasted"].mean().groupby(level=[0, 1]).max()
    limit = float(worst.median())
    grid = objective_grid(result.repick(max_wasted=limit))
    for (ft, timeout), value in worst.items():
        assert math.isnan(grid.loc[ft, timeout]) == (value > limit)


def test_the_pick_table_is_the_pick_and_the_current_config_with_cis(result: Any) -> None:
    table = result.pick_table()
    assert list(table.index) == [*result.variant_names, "worst case"]
    runs = result.table
    for variant in result.variant_names:
        mine = runs[(runs["scenario"] == variant)
                    & (runs["failure_threshold"] == result.pick.setting["failure_threshold"])
                    & (runs["timeout"] == result.pick.setting["timeout"])]["availability"]
        assert table.loc[variant, "pick"] == pytest.approx(mine.mean())
        half = 4.303 * mine.std(ddof=1) / math.sqrt(len(mine))  # Student's t, 2 df
        assert table.loc[variant, "pick_high"] - table.loc[variant, "pick"] == pytest.approx(
            half, abs=1e-12)
    assert table.loc["worst case", "pick"] == pytest.approx(result.pick.robust)
    assert table.loc["worst case", "current"] == pytest.approx(result.current.robust)


def test_the_fit_quality_table_is_the_fit_per_phase_and_quantile(result: Any) -> None:
    table = fit_quality_table(result)
    assert list(table["phase"].unique()) == [name for name, *_ in PROFILE]
    for phase in result.fit.phases:
        rows = table[table["phase"] == phase.name].set_index("quantile")
        for q, tag in ((0.5, "p50"), (0.9, "p90"), (0.99, "p99")):
            assert rows.loc[tag, "observed_ms"] == pytest.approx(phase.latency.observed_ms[q],
                                                                 abs=0.01)
            assert rows.loc[tag, "fitted_ms"] == pytest.approx(phase.latency.fitted_ms[q],
                                                               abs=0.01)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(rows=[]), TuneError, "no rows"),
    (dict(grid={}), TuneError, "at least one setting"),
    (dict(grid={"timeout": []}), TuneError, "at least one setting"),
    (dict(longer=0.5), TuneError, "longer must be >= 1"),
    (dict(seeds=0), TuneError, "seeds must be >= 1"),
    (dict(rows=crafted_rows()[:10]), FitError, "need at least"),
    (dict(objective=Objective(max_wasted=0.0)), TuneError, "no setting keeps wasted calls"),
])
def test_bad_input_is_refused_with_the_reason(kwargs: dict[str, Any], error: type,
                                              match: str) -> None:
    rows = kwargs.pop("rows", crafted_rows())
    options = {"grid": {"failure_threshold": [3], "timeout": [5.0]}, "seeds": 1, "workers": 1,
               **kwargs}
    with pytest.raises(error, match=match):
        tune(rows, {}, **options)


def test_the_view_repicks_when_a_weight_moves(result: Any) -> None:
    from cblab.lab.tune_view import TuneView, pick_table_html

    view = TuneView(result.repick(kind="cost"))
    before = view.table.value
    view.sliders["cost_refused"].value = 5.0  # what the slider does in the browser
    expected = repick(result, Objective("cost", cost_refused=5.0))  # top of max_wasted: no limit
    assert view.sliders["max_wasted"].value == view.sliders["max_wasted"].max
    assert view.result.pick.setting == expected.pick.setting
    assert view.result.objective.cost_refused == 5.0
    assert view.result.objective.max_wasted is None
    assert view.table.value == pick_table_html(expected) != before
    drawn = [t for t in view.figure.data if t.type == "heatmap"]
    fresh = [t for t in expected.heatmap_figure().data if t.type == "heatmap"]
    assert [t.z for t in drawn] == [t.z for t in fresh]
    # a limit no setting meets: said in the view, the last pick kept
    kept = view.result
    view.sliders["max_wasted"].value = 0.0
    assert "no setting keeps wasted calls" in view.message.value
    assert view.result is kept


def test_the_pick_and_fit_figures_draw_those_numbers(result: Any) -> None:
    from cblab.tune.figures import fit_figure, pick_figure

    runs = result.table
    pick, current = pick_figure(result).data
    for trace, setting, table in ((pick, result.pick.setting, runs),
                                  (current, result.current.setting, result.current_table)):
        mine = table[(table["failure_threshold"] == setting["failure_threshold"])
                     & (table["timeout"] == setting["timeout"])]
        means = mine.groupby("scenario", sort=False)["availability"].mean()
        expected = [means[v] for v in result.variant_names] + [means.min()]  # + worst case
        assert list(trace.x) == [*result.variant_names, "worst case"]
        assert list(trace.y) == pytest.approx(expected)
    observed, fitted = fit_figure(result).data
    start = result.fit.warmup.end_s if result.fit.warmup else -1.0  # a warm-up left out
    healthy = sorted(1000 * r["latency"] for r in crafted_rows()
                     if r["phase"] == "healthy" and r["t"] >= start)  # all answered
    nearest_rank_p50 = healthy[math.ceil(0.5 * len(healthy)) - 1]  # the fit's definition
    assert observed.y[0] == pytest.approx(nearest_rank_p50, abs=0.005)
    assert list(fitted.y) == pytest.approx(list(fit_quality_table(result)["fitted_ms"]))
