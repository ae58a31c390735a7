"""A report's KPI table is `cblab.analysis`'s figures for the same run, and says why
when one is missing."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from cblab import analysis
from cblab.report import build_report
from cblab.report.kpis import NO_BREAKER, NO_SCENARIO, REPORT_KPIS, kpi_views, run_kpis
from cblab.runs import Run, RunMeta, load_run
from tests.plots.sample import SCENARIO, sample_events, two_source_events

SHIPPED = Path(__file__).resolve().parents[2] / "data" / "runs"
SHIPPED_RUNS = sorted(p.name for p in SHIPPED.iterdir() if (p / "run.json").is_file())


def analysis_figure(figures, column: str) -> float:
    """A report column from `cblab.analysis.run_kpis` figures (latencies in ms)."""
    if column.endswith("_ms"):
        return figures[f"{column.removesuffix('_ms')}_s"] * 1000.0
    return float(figures[column])


def assert_same(a: float, b: float, what: str) -> None:
    assert (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12), what


def sample_run(**meta) -> Run:
    base = {"name": "sample", "config": {"users": {"failure_threshold": 2}},
            "scenario": {"name": "blip", "spec": SCENARIO}}
    return Run(RunMeta(**{**base, **meta}), sample_events())


def test_the_table_is_analysis_run_kpis_of_each_variant():
    run = sample_run()
    table = run_kpis(run)
    assert list(table.columns) == list(REPORT_KPIS)
    assert list(table.index) == ["protected", "unprotected"]
    events = run.events
    for variant in table.index:
        own = events[events["variant"] == variant]
        figures = analysis.run_kpis(own, SCENARIO)
        gaps = table.attrs["unavailable"].get(variant, {})
        for column in REPORT_KPIS:
            if column not in gaps:
                assert_same(table.loc[variant, column], analysis_figure(figures, column),
                            f"{variant} {column}")
    # the unprotected variant: no breaker, so no breaker KPIs, and the table says why
    assert set(table.attrs["unavailable"]) == {"unprotected"}
    gaps = table.attrs["unavailable"]["unprotected"]
    assert set(gaps) == set(REPORT_KPIS) & set(analysis.BREAKER_KPIS)
    assert set(gaps.values()) == {NO_BREAKER}
    assert table.loc["unprotected", list(gaps)].isna().all()
    assert "note" not in table.attrs  # a missing breaker is not a problem


def test_scenarios_are_played_at_their_time_scale():
    spec = {**SCENARIO, "phases": [{**p, "duration_s": p["duration_s"] * 10}
                                   for p in SCENARIO["phases"]]}
    slow = run_kpis(sample_run(scenario={"name": "blip", "spec": spec}, extra={"time_scale": 0.1}))
    as_written = run_kpis(sample_run())
    for column in REPORT_KPIS:
        for variant in as_written.index:
            assert_same(slow.loc[variant, column], as_written.loc[variant, column], column)


@pytest.mark.parametrize("name", SHIPPED_RUNS)
def test_shipped_live_runs_equal_analysis_of_their_sources(name):
    """Live runs: the caller's figures are analysis's for the load generator's rows,
    the breaker's for the server's rows, against the scenario as played."""
    run = load_run(SHIPPED / name)
    table = run_kpis(run)
    by_source = analysis.kpis(run.events, analysis.played_scenario(run)).set_index("source")
    assert list(by_source.index) == ["load", "server"]
    (variant,) = table.index
    gaps = table.attrs["unavailable"].get(variant, {})
    assert set(gaps.values()) <= {NO_BREAKER}
    if variant.startswith("unprotected"):
        assert set(gaps) == set(REPORT_KPIS) & set(analysis.BREAKER_KPIS)
    for column in REPORT_KPIS:
        if column in gaps:
            continue
        source = "server" if column in analysis.BREAKER_KPIS else "load"
        assert_same(table.loc[variant, column],
                    analysis_figure(by_source.loc[source], column), f"{name} {column}")


def test_views_are_the_callers_calls_and_the_breakers_changes():
    events = two_source_events()
    run = Run(RunMeta(name="two", config={"users": {}}), events)
    (view,) = kpi_views(run)
    assert view.label == "protected" and view.protected
    assert set(view.events["source"]) == {"report"}
    assert len(view.events) == 2  # the load generator's two calls, not the server's three
    assert run_kpis(run).loc["protected", "requested"] == 2


def test_no_scenario_means_no_fault_kpis():
    table = run_kpis(sample_run(scenario=None))
    gaps = table.attrs["unavailable"]["protected"]
    assert set(gaps) == set(REPORT_KPIS) & set(analysis.FAULT_KPIS)
    assert set(gaps.values()) == {NO_SCENARIO}
    assert table.loc["protected", "trips"] == 1  # everything else still analysis's
    figures = analysis.run_kpis(sample_events().query("variant == 'protected'"))
    assert table.loc["protected", "availability"] == figures["availability"]


def test_an_unreadable_scenario_is_a_problem_the_report_shows():
    table = run_kpis(sample_run(scenario={"name": "nowhere", "spec": None}))
    assert "scenario 'nowhere' cannot be read" in table.attrs["note"]
    assert math.isnan(table.loc["protected", "wasted"])
    bad_scale = run_kpis(sample_run(extra={"time_scale": -1}))
    assert "time_scale" in bad_scale.attrs["note"]


def test_events_analysis_refuses_give_no_kpis_and_say_why():
    events = sample_events()
    events.loc[0, "latency"] = -1.0  # protected's first call
    run = Run(RunMeta(name="bad", config={"users": {}}, scenario={"name": "blip",
                                                                   "spec": SCENARIO}), events)
    table = run_kpis(run)
    assert table.loc["protected"].isna().all()
    reasons = set(table.attrs["unavailable"]["protected"].values())
    assert len(reasons) == 1 and "latency must be >= 0" in reasons.pop()
    assert "cblab.analysis cannot analyse protected" in table.attrs["note"]
    assert not math.isnan(table.loc["unprotected", "requested"])
    text = build_report([run], plotlyjs="cdn")
    assert 'class="kpi-source warn"' in text and ">n/a</td>" in text


def test_the_comparison_table_keeps_the_reasons():
    runs = [sample_run(name="a"), sample_run(name="b", scenario=None)]
    text = build_report(runs, plotlyjs="cdn")
    table = text[text.index('id="comparison-kpis"'):]
    table = table[: table.index("</table>")]
    assert f'title="n/a: {NO_BREAKER}"' in table
    assert 'title="n/a: the run records no scenario' in table
