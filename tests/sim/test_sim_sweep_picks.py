"""04-tuning's questions over sweep tables: confidence intervals on the heatmaps, the
per-scenario and robust picks, and the live check's chart (fault phases shaded, the
whole scenario in view, the run ending with the scenario)."""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest

from cblab.lab import LabParams
from cblab.lab.dashboard import live_figure
from cblab.lab.tuning import (
    SWEEP_SCORES,
    heatmaps,
    live_check,
    robust_config,
    scenario_picks,
    shade_faults,
    sweep_grid,
    worst_case,
)
from cblab.sim import resolve_scenario
from cblab.sim.sweep import sweep


def synthetic() -> pd.DataFrame:
    """Setting (1, 1) is best on "crash" and awful on "flap"; (5, 5) is good on both."""
    availability = {(1, 1.0): {"crash": 0.95, "flap": 0.40},
                    (5, 5.0): {"crash": 0.90, "flap": 0.85},
                    (9, 9.0): {"crash": 0.70, "flap": 0.88}}
    rows = []
    for (threshold, timeout), by_scenario in availability.items():
        for scenario, value in by_scenario.items():
            for seed, noise in enumerate((-0.01, 0.01)):
                rows.append({"failure_threshold": threshold, "timeout": timeout,
                             "scenario": scenario, "seed": seed, "availability": value + noise,
                             "flaps": 1.0, "wasted_share": 0.1,
                             "recovery_s": 10.0 * threshold + seed})
    return pd.DataFrame(rows)


def test_the_robust_pick_is_the_best_worst_case():
    table = synthetic()
    assert robust_config(table) == {"failure_threshold": 5, "timeout": 5.0}
    worst = worst_case(table).set_index(["failure_threshold", "timeout"])
    assert worst.loc[(1, 1.0), "availability"] == pytest.approx(0.40)  # the lowest scenario
    assert worst.loc[(9, 9.0), "recovery_s"] == pytest.approx(90.5)  # the slowest scenario
    picks = scenario_picks(table)
    assert picks.attrs["robust"] == {"failure_threshold": 5, "timeout": 5.0}
    assert picks.loc["crash", "its best setting"] == "threshold 1, timeout 1 s"
    assert picks.loc["flap", "its best setting"] == "threshold 9, timeout 9 s"
    assert picks.loc["crash", "robust pick's availability"] == pytest.approx(0.90)
    assert picks.loc["worst case", "its best availability"] == pytest.approx(0.88)
    assert picks.loc["worst case", "robust pick's availability"] == pytest.approx(0.85)
    # a lower-is-better score is minimax
    assert robust_config(table, "recovery_s") == {"failure_threshold": 1, "timeout": 1.0}
    with pytest.raises(ValueError, match="unknown score"):
        robust_config(table, "happiness")
    with pytest.raises(ValueError, match="scenario"):
        robust_config(table.drop(columns="scenario"))


def test_heatmap_hover_gives_a_confidence_interval_over_seeds():
    table = synthetic()
    fig = heatmaps(table[table.scenario == "crash"], SWEEP_SCORES)
    assert fig.layout.title.text.startswith("Sweeping the breaker on “crash”")
    heat = fig.data[0]  # availability
    assert "%{customdata}" in heat.hovertemplate
    # cell (threshold 1, timeout 1): two runs 0.94 and 0.96 -> mean 0.95, sd 0.01414,
    # half-width t(0.975, 1) * sd / sqrt(2) = 12.706 * 0.01 = 0.127
    text = heat.customdata[0][0]
    assert text == f"95% CI {0.95 - 0.12706:.1%} to {0.95 + 0.12706:.1%} (mean of 2 runs)"
    # one run per cell: said, not a NaN interval
    one = heatmaps(table[(table.scenario == "crash") & (table.seed == 0)], SWEEP_SCORES)
    assert one.data[0].customdata[0][0] == "1 run: no confidence interval"
    drawn = heatmaps(worst_case(table), SWEEP_SCORES, pick=robust_config(table))
    assert drawn.layout.title.text.startswith("Sweeping the breaker on the worst of “crash”, “flap”")


def test_the_first_heatmap_names_its_scenario():
    grid = sweep_grid("hang", quick=True)
    title = heatmaps(grid).layout.title.text
    assert "“hang”" in title and "“”" not in title
    assert {"availability_ci", "runs"} <= set(grid.columns)


def test_a_real_sweep_over_scenarios_gives_picks():
    table = sweep({"failure_threshold": [2, 8], "timeout": [1, 10]},
                  [resolve_scenario(n).scaled(0.3) for n in ("outage-and-recovery", "flapping")],
                  2, workers=1, progress=False)
    picks = scenario_picks(table)
    assert list(picks.index) == ["outage-and-recovery", "flapping", "worst case"]
    robust = picks.attrs["robust"]
    worst = worst_case(table).set_index(["failure_threshold", "timeout"])["availability"]
    assert worst[(robust["failure_threshold"], robust["timeout"])] == worst.max()


def test_the_live_check_chart_shades_the_faults_and_keeps_the_scenario_in_view():
    scenario = resolve_scenario("outage-and-recovery")  # healthy 30 s, outage 30 s, healthy 30 s
    fig = shade_faults(live_figure(["protected"], "github"), scenario)
    bands = [s for s in fig.layout.shapes if s.name == "fault: outage"]
    assert len(bands) == 4  # every row of the chart
    assert {(b.x0, b.x1) for b in bands} == {(30.0, 60.0)}
    assert bands[0].label.text == "outage"

    params = LabParams.from_env({})
    lab = live_check(params, {"failure_threshold": 5, "timeout": 10.0}, scenario)
    assert lab.params.run_seconds == pytest.approx(92.0)  # ends after the scenario
    assert lab.feed.window_s >= 95.0  # the outage's start stays in view to the end
    assert lab.scenario.total_duration_s == 90.0
    assert "“outage-and-recovery”" in lab.title and "timeout=10" in lab.title
    lab._install_figure()  # the chart the lab shows once started
    assert sum(1 for s in lab.figure.layout.shapes if s.name == "fault: outage") == 4

    bounded = live_check(replace(params, run_seconds=24.0), {"failure_threshold": 5}, scenario)
    assert bounded.params.run_seconds == 24.0
    assert math.isclose(bounded.scenario.total_duration_s, 24.0)
