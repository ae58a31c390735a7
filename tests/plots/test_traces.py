"""Trace arrays, checked value by value on hand-built frames."""

from __future__ import annotations

import pandas as pd
import pytest

from cblab.analysis import run_kpis
from cblab.plots import traces as tr
from tests.plots.sample import END, empty_events, sample_events, sample_rows, two_source_events


def test_as_events_fills_missing_columns_and_accepts_rows():
    frame = tr.as_events([{"kind": "call", "t": 1.0}])
    assert set(frame.columns) >= {"variant", "outcome", "phase"}
    assert frame["variant"].isna().all()
    assert tr.as_events(None).empty
    complete = sample_events()
    assert tr.as_events(complete) is complete  # no copy when nothing is missing


def test_variants_in_order_of_appearance():
    assert tr.variants_of(sample_events()) == ["protected", "unprotected"]
    assert tr.variants_of(empty_events()) == []
    assert tr.variants_of(pd.DataFrame([{"kind": "call", "t": 0.0}])) == ["run"]


def test_run_end_is_the_last_call_end():
    assert tr.run_end(sample_events()) == pytest.approx(END)
    assert tr.run_end(empty_events()) == 0.0


def test_phase_spans_cover_the_run_in_time_order():
    spans = tr.phase_spans(sample_events())
    assert [name for name, _, _ in spans] == ["healthy", "outage", "recovery"]
    assert spans[0][1] == 0.0
    assert spans[1][1:] == (1.0, 4.0)
    assert spans[2][1] == 4.0 and spans[2][2] == pytest.approx(END)
    assert tr.phase_spans(empty_events()) == []


def test_phase_spans_merge_a_straggler_across_a_boundary():
    rows = [{"kind": "call", "t": t, "phase": "a"} for t in (0.1, 0.2, 0.3, 0.5)]
    rows += [{"kind": "call", "t": 0.4, "phase": "b"}]  # one row of b inside a
    rows += [{"kind": "call", "t": t, "phase": "b"} for t in (1.0, 1.1, 1.2)]
    spans = tr.phase_spans(pd.DataFrame(rows))
    assert [(n, s) for n, s, _ in spans] == [("a", 0.0), ("b", 1.0)]


def test_state_bands_segments_per_state():
    bands = tr.state_bands(sample_events())
    assert bands.rows == ["protected · users", "unprotected · no breaker"]
    closed, open_, half = bands.bars["closed"], bands.bars["open"], bands.bars["half_open"]
    assert closed.y == ["protected · users", "protected · users"]
    assert closed.base == [0.0, 4.25]
    assert closed.x == pytest.approx([2.5, END - 4.25])
    assert open_.base == [2.5] and open_.x == pytest.approx([1.5])
    assert open_.customdata == [[4.0, "tripped"]]
    assert half.base == [4.0] and half.x == pytest.approx([0.25])
    none = bands.bars["none"]
    assert none.y == ["unprotected · no breaker"] and none.x == pytest.approx([END])


def test_state_bands_single_variant_and_t_end_and_unprotected():
    protected = sample_events().query("variant == 'protected'")
    bands = tr.state_bands(protected, t_end=10.0)
    assert bands.rows == ["users"]
    assert bands.bars["closed"].x[-1] == pytest.approx(10.0 - 4.25)
    forced = tr.state_bands(sample_events(), unprotected=["protected"])
    assert forced.rows == ["protected · no breaker", "unprotected · no breaker"]
    assert forced.bars["open"].y == []


def test_state_bands_without_state_rows_start_from_the_calls_state():
    rows = [r for r in sample_rows() if r["kind"] == "call" and r["variant"] == "protected"]
    bands = tr.state_bands(pd.DataFrame(rows))
    assert bands.bars["closed"].base == [0.0]  # the first call was admitted closed
    assert tr.state_bands(empty_events()).rows == []


def test_latency_points_per_variant_and_outcome():
    points = tr.latency_points(sample_events())
    assert list(points) == [
        ("protected", "success"),
        ("protected", "failure"),
        ("protected", "rejected"),
        ("unprotected", "success"),
        ("unprotected", "failure"),
    ]
    success = points[("protected", "success")]
    assert success.x == [0.5, 4.2, 5.0]
    assert success.y == pytest.approx([20.0, 30.0, 40.0])
    assert points[("protected", "rejected")].y == [0.0, 0.0]
    assert points[("unprotected", "failure")].x == [1.0, 1.5, 3.0, 3.5]
    floored = tr.latency_points(sample_events(), min_ms=0.1)
    assert floored[("protected", "rejected")].y == [0.1, 0.1]
    only = tr.latency_points(sample_events(), outcomes=["failure"])
    assert {o for _, o in only} == {"failure"}
    assert tr.latency_points(empty_events()) == {}


def test_client_view_prefers_the_load_generator_backend_view_the_server():
    frame = two_source_events()
    points = tr.latency_points(frame)
    assert points[("protected", "success")].y == pytest.approx([50.0])  # load's latency
    rates = tr.backend_rate_series(frame, 1.0)
    assert rates[("protected", "backend")].y[0] == 2.0  # server: two admitted calls
    assert rates[("protected", "offered")].y[0] == 2.0  # load: two calls offered
    assert list(tr.call_rows(frame, tr.BACKEND_VIEW)["source"]) == ["server"] * 3


def test_latency_groups_by_phase():
    order, groups = tr.latency_groups(sample_events())
    assert order == ["healthy", "outage", "recovery"]
    protected = groups["protected"]
    assert protected.x == [
        "healthy",
        "outage",
        "outage",
        "outage",
        "outage",
        "recovery",
        "recovery",
    ]
    assert protected.y == pytest.approx([20, 1000, 1000, 0, 0, 30, 40])
    order, groups = tr.latency_groups(sample_events(), "tool")
    assert order == ["get_user"]
    with pytest.raises(ValueError, match="not an event column"):
        tr.latency_groups(sample_events(), "colour")


def test_latency_ecdf():
    curves = tr.latency_ecdf(sample_events())
    outage = curves[("protected", "outage")]
    assert outage.x == [0.0, 0.0, 1000.0, 1000.0]
    assert outage.y == [0.25, 0.5, 0.75, 1.0]


def test_success_rate_trailing_window():
    series = tr.success_rate_series(sample_events(), 2.0, step_s=1.0)
    protected = series["protected"]
    assert protected.x == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert protected.y == pytest.approx([0.5, 1 / 3, 0.0, 0.0, 2 / 3])
    assert series["unprotected"].y[2] == 0.0
    sparse = tr.success_rate_series(pd.DataFrame([sample_rows()[0]]), 0.1, step_s=0.1)
    assert None in sparse["protected"].y  # no call in the window: a gap, not 0 %
    with pytest.raises(ValueError):
        tr.success_rate_series(sample_events(), 0)


def test_success_rate_counts_what_availability_counts():
    outcomes = [("success", None), ("late", None), ("late", "not_found"), ("late", "http_500"),
                ("slow", None), ("failure", "http_500"), ("rejected", "dependency_unavailable"),
                ("timeout", None)]
    rows = [
        {**sample_rows()[0], "seq": i + 1, "t": 0.1 * (i + 1), "outcome": o, "error_type": e}
        for i, (o, e) in enumerate(outcomes)
    ]
    series = tr.success_rate_series(pd.DataFrame(rows), 10.0, step_s=1.0)
    assert series["protected"].y == [pytest.approx(4 / 8)]  # answered late calls count
    assert series["protected"].y[0] == pytest.approx(run_kpis(rows)["availability"])


def test_backend_rate_counts_admitted_calls():
    rates = tr.backend_rate_series(sample_events(), 1.0)
    backend = rates[("protected", "backend")]
    assert backend.x == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert backend.y == [1.0, 2.0, 0.0, 0.0, 2.0, 2.0]  # rejections never reach it
    assert rates[("protected", "offered")].y == [1.0, 2.0, 0.0, 2.0, 2.0, 2.0]
    assert rates[("unprotected", "backend")].y == [1.0, 2.0, 0.0, 2.0, 2.0, 2.0]
    half = tr.backend_rate_series(sample_events(), 0.5, offered=False)
    assert set(half) == {("protected", "backend"), ("unprotected", "backend")}
    assert tr.backend_rate_series(empty_events(), 1.0) == {}
    with pytest.raises(ValueError):
        tr.backend_rate_series(sample_events(), -1)


def test_combine_events_labels_rows_by_run():
    a = sample_events().query("variant == 'protected'")
    both = tr.combine_events({"A": a, "B": sample_events()})
    assert tr.variants_of(both) == ["A", "B · protected", "B · unprotected"]
    assert len(both) == len(a) + len(sample_events())
