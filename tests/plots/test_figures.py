"""Figure builders: the traces carry the arrays of `cblab.plots.traces`, keyed in meta."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from cblab import plots
from cblab.plots import traces as tr
from cblab.plots.style import OUTCOME_COLORS, STATE_COLORS, variant_colors
from tests.plots.sample import END, empty_events, sample_events

BUILDERS = [
    plots.state_timeline,
    plots.latency_scatter,
    plots.latency_distribution,
    plots.success_rate,
    plots.backend_load,
]


def _by_meta(fig: go.Figure) -> dict:
    return {(t.meta[0] if len(t.meta) == 1 else tuple(t.meta)): t for t in fig.data if t.meta}


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_empty_frame_gives_an_empty_figure_with_a_note(builder):
    fig = builder(empty_events())
    assert isinstance(fig, go.Figure)
    assert len(fig.data) == 0
    notes = [a.text for a in fig.layout.annotations]
    assert notes and ("No calls yet" in notes[0] or "No breaker" in notes[0])


@pytest.mark.parametrize("builder", BUILDERS, ids=lambda b: b.__name__)
def test_builders_accept_row_dicts_and_serialise(builder):
    fig = builder(sample_events().to_dict("records"))
    assert len(fig.data) > 0
    fig.to_json()  # valid plotly


def test_state_timeline_draws_one_bar_trace_per_state():
    fig = plots.state_timeline(sample_events())
    traces = _by_meta(fig)
    assert set(traces) == {"closed", "half_open", "open", "none"}
    open_ = traces["open"]
    assert open_.orientation == "h"
    assert list(open_.base) == [2.5] and list(open_.x) == pytest.approx([1.5])
    assert open_.marker.color == STATE_COLORS["open"]
    assert list(traces["closed"].y) == ["protected · users"] * 2
    assert list(traces["none"].x) == pytest.approx([END])
    assert fig.layout.barmode == "overlay"
    # the scenario's phases are marked: shaded rectangles and a label per phase
    labels = [a.text for a in fig.layout.annotations]
    assert labels == ["healthy", "outage", "recovery"]
    assert any(s.type == "rect" for s in fig.layout.shapes)


def test_latency_scatter_one_row_per_variant_coloured_by_outcome():
    fig = plots.latency_scatter(sample_events())
    traces = _by_meta(fig)
    success = traces[("protected", "success")]
    assert list(success.x) == [0.5, 4.2, 5.0]
    assert list(success.y) == pytest.approx([20.0, 30.0, 40.0])
    assert success.marker.color == OUTCOME_COLORS["success"]
    assert traces[("unprotected", "failure")].yaxis == "y2"  # second row
    assert [t.showlegend for t in fig.data].count(True) == 3  # success, failure, rejected
    log = plots.latency_scatter(sample_events(), log_y=True)
    assert log.layout.yaxis.type == "log"
    assert list(_by_meta(log)[("protected", "rejected")].y) == [0.1, 0.1]


def test_latency_distribution_box_and_ecdf():
    fig = plots.latency_distribution(sample_events())
    traces = _by_meta(fig)
    assert set(traces) == {"protected", "unprotected"}
    assert all(isinstance(t, go.Box) for t in fig.data)
    assert list(fig.layout.xaxis.categoryarray) == ["healthy", "outage", "recovery"]
    assert list(traces["protected"].y) == pytest.approx([20, 1000, 1000, 0, 0, 30, 40])
    assert traces["protected"].marker.color == variant_colors(["protected"])["protected"]
    protected = sample_events().query("variant == 'protected'")
    auto = plots.latency_distribution(protected, log_y=None)
    assert auto.layout.yaxis.type == "log"  # 1000 ms failures vs a 40 ms median
    assert list(_by_meta(auto)["protected"].y)[3:5] == [0.1, 0.1]  # rejections on the floor
    assert plots.latency_distribution(sample_events(), log_y=None).layout.yaxis.type is None
    ecdf = plots.latency_distribution(sample_events(), kind="ecdf")
    assert list(_by_meta(ecdf)[("protected", "outage")].y) == [0.25, 0.5, 0.75, 1.0]
    with pytest.raises(ValueError):
        plots.latency_distribution(sample_events(), kind="violin")


def test_success_rate_and_backend_load_traces():
    fig = plots.success_rate(sample_events(), 2.0, step_s=1.0)
    rate = _by_meta(fig)["protected"]
    assert list(rate.y) == pytest.approx([0.5, 1 / 3, 0.0, 0.0, 2 / 3])
    assert fig.layout.yaxis.tickformat == ".0%"
    load = plots.backend_load(sample_events(), 1.0)
    traces = _by_meta(load)
    assert list(traces[("protected", "backend")].y) == [1.0, 2.0, 0.0, 0.0, 2.0, 2.0]
    assert traces[("protected", "offered")].line.dash == "dot"
    assert traces[("protected", "backend")].line.shape == "hv"


def test_set_trace_data_refreshes_a_figure_in_place():
    fig = plots.latency_scatter(sample_events())
    window = sample_events().query("t >= 3")
    tr.set_trace_data(fig, tr.latency_points(window))
    traces = _by_meta(fig)
    assert list(traces[("protected", "success")].x) == [4.2, 5.0]
    assert list(traces[("protected", "failure")].x) == []  # gone from the window: emptied
    bars = plots.state_timeline(sample_events())
    tr.set_trace_data(bars, tr.state_bands(sample_events(), t_end=9.0).bars)
    assert _by_meta(bars)["closed"].x[-1] == pytest.approx(9.0 - 4.25)


def test_labels_from_run_data_are_escaped():
    frame = sample_events()
    frame["variant"] = frame["variant"].replace({"protected": "<b>bold</b>"})
    fig = plots.success_rate(frame)
    assert "&lt;b&gt;bold&lt;/b&gt;" in [t.name for t in fig.data]


def test_kpi_table_and_comparison_colours():
    kpis = pd.DataFrame(
        {"availability": [0.9, 0.6], "latency_p99_ms": [120.0, 2000.0], "requested": [10, 10]},
        index=["protected", "unprotected"],
    )
    verdicts = plots.compare_kpis(kpis, baseline="unprotected")
    assert verdicts.loc["protected", "availability"] == "better"
    assert verdicts.loc["protected", "latency_p99_ms"] == "better"
    assert verdicts.loc["protected", "requested"] == ""  # no better direction
    assert (verdicts.loc["unprotected"] == "").all()
    fig = plots.comparison_table(kpis, baseline=1)
    table = fig.data[0]
    assert isinstance(table, go.Table)
    assert list(table.cells.values[0]) == [
        "availability (answered)", "latency p99", "calls made"]
    assert list(table.cells.values[1]) == ["90.0 %", "120 ms", "10"]
    assert table.cells.fill.color[1][0] == plots.tables.BETTER_FILL
    assert "baseline" in table.header.values[2]
    assert len(plots.kpi_table(pd.DataFrame()).data) == 0
    assert plots.format_kpi("latency_p50_ms", float("nan")) == "—"
    assert plots.format_kpi("latency_p50_ms", 1234.5) == "1,234 ms"
    assert plots.format_kpi("latency_p50_s", 0.25) == "0.25 s"  # analysis's own unit


def test_kpi_table_says_na_where_the_frame_says_why():
    kpis = pd.DataFrame({"trips": [1.0, float("nan")], "detection_s": [float("nan")] * 2},
                        index=["protected", "unprotected"])
    kpis.attrs["unavailable"] = {"unprotected": {"trips": "no breaker protects this variant"}}
    assert plots.tables.unavailable_kpis(kpis) == {
        ("unprotected", "trips"): "no breaker protects this variant"}
    cells = plots.kpi_table(kpis).data[0].cells.values
    assert list(cells[1]) == ["1", "—"]  # a figure analysis gave as NaN: just missing
    assert list(cells[2]) == ["n/a", "—"]


def test_every_analysis_and_report_kpi_has_a_spec():
    from cblab.analysis import KPI_COLUMNS
    from cblab.report.kpis import REPORT_KPIS

    missing = [k for k in (*KPI_COLUMNS, *REPORT_KPIS) if k not in plots.KPI_SPECS]
    assert missing == []
