"""Unit tests for the models behind the notebooks' widgets (no widgets, no servers)."""

from __future__ import annotations

import math

import pytest

from cblab import CircuitBreakerConfig, ConsecutiveFailures, CumulativeFailures
from cblab.lab import (
    BreakerStepper,
    BulkheadSpec,
    LabParams,
    LiveFeed,
    ParamError,
    RetrySpec,
    compare_policies,
    expected_calls_until_trip,
    simulate_bulkhead,
    simulate_retries,
    state_diagram_svg,
)
from cblab.lab.params import parse_autopilot
from cblab.schema import event_row

# --- BreakerStepper --------------------------------------------------------------------


def make_stepper(**config) -> BreakerStepper:
    base = {"failure_threshold": 2, "success_threshold": 2, "timeout": 10.0,
            "half_open_max_calls": 2}
    return BreakerStepper(CircuitBreakerConfig(**{**base, **config}))


def test_stepper_walks_the_whole_cycle() -> None:
    s = make_stepper()
    assert s.fail().state_after == "closed"
    step = s.fail()
    assert (step.state_before, step.state_after, step.moved) == ("closed", "open", True)
    assert "CLOSED → OPEN" in step.message
    rejected = s.succeed()
    assert rejected.outcome == "rejected" and "retry after 10 s" in rejected.message
    assert s.advance(9.5).state_after == "open"
    half = s.advance(0.5)
    assert half.state_after == "half_open" and "open timeout elapsed" in half.message
    assert s.succeed().state_after == "half_open"
    closed = s.succeed()
    assert closed.state_after == "closed" and "trial calls succeeded" in closed.message
    assert s.counters()["trips"] == 1


def test_a_success_resets_the_consecutive_count() -> None:
    s = make_stepper(failure_threshold=3)
    s.fail(), s.fail(), s.succeed(), s.fail(), s.fail()
    assert s.state == "closed"
    assert s.counters()["consecutive_failures"] == 2


def test_cumulative_policy_never_forgives() -> None:
    s = make_stepper(failure_threshold=3, policy=CumulativeFailures())
    s.fail(), s.succeed(), s.fail(), s.succeed(), s.succeed(), s.fail()
    assert s.state == "open"


def test_half_open_admits_at_most_half_open_max_calls_trials() -> None:
    s = make_stepper()
    s.fail(), s.fail(), s.advance(10)
    assert s.begin().outcome is None and s.begin().outcome is None
    third = s.begin()
    assert third.outcome == "rejected" and "trial slots" in third.message
    assert s.counters()["trials_in_flight"] == 2
    assert s.finish(True).state_after == "half_open"
    assert s.finish(True).state_after == "closed"


def test_an_outcome_after_the_breaker_moved_on_is_late() -> None:
    s = make_stepper(failure_threshold=1)
    s.begin()  # admitted while closed
    s.fail()  # trips the breaker: generation changes
    late = s.finish(False)
    assert late.outcome == "late" and "no effect" in late.message
    assert s.state == "open" and s.counters()["late"] == 1


def test_finish_without_calls_in_flight_says_so() -> None:
    assert "No call is in flight" in make_stepper().finish().message


def test_configure_refuses_impossible_settings_and_keeps_the_old_ones() -> None:
    s = make_stepper()
    error = s.configure(success_threshold=3)
    assert error is not None and "success_threshold" in error and "half_open_max_calls" in error
    assert s.config.success_threshold == 2
    assert s.configure(half_open_max_calls=4, success_threshold=3) is None
    assert s.config.success_threshold == 3


def test_reset_clears_everything() -> None:
    s = make_stepper()
    s.begin(), s.fail(), s.fail(), s.succeed(), s.advance(3)
    s.reset()
    assert s.state == "closed" and not s.in_flight
    counters = s.counters()
    assert counters["clock"] == 0 and counters["trips"] == 0
    assert counters["calls"] == counters["rejected"] == counters["late"] == 0
    assert [step.action for step in s.steps] == ["reset"] and s.last_transition is None


def test_stepper_names_states_one_way() -> None:
    s = make_stepper()
    moves = [s.fail().message, s.fail().message, s.advance(100).message]
    text = " ".join(moves)
    assert "HALF-OPEN" in text and "HALF_OPEN" not in text


def test_history_is_bounded() -> None:
    s = BreakerStepper(history=5)
    for _ in range(20):
        s.succeed()
    assert len(s.steps) == 5


# --- diagram ---------------------------------------------------------------------------


def test_diagram_highlights_the_state_and_the_last_move() -> None:
    svg = state_diagram_svg("open", last_move=("closed", "open"),
                            config={"failure_threshold": 5, "timeout": 30})
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "current state OPEN" in svg
    assert "failure_threshold (5)" in svg and "timeout (30 s)" in svg
    assert svg.count('stroke-width="3.5"') == 1  # one bold arrow
    with pytest.raises(ValueError, match="state must be one of"):
        state_diagram_svg("ajar")


# --- policy comparison ------------------------------------------------------------------


def test_expected_calls_until_trip_matches_the_formula() -> None:
    p, k = 0.5, 2
    assert expected_calls_until_trip(p, k) == pytest.approx((1 - p**k) / ((1 - p) * p**k))
    assert expected_calls_until_trip(0.02, 5, "cumulative") == pytest.approx(250)
    assert expected_calls_until_trip(0.0, 5) == math.inf
    assert expected_calls_until_trip(1.0, 5) == 5
    with pytest.raises(ValueError):
        expected_calls_until_trip(1.5, 5)


def test_compare_policies_cumulative_trips_a_healthy_service_consecutive_does_not() -> None:
    result = compare_policies(0.02, rate=20, duration=120, seed=3)
    trips = dict(zip(result.summary["policy"], result.summary["trips"], strict=True))
    cumulative = next(v for k, v in trips.items() if k.startswith("cumulative"))
    others = [v for k, v in trips.items() if not k.startswith("cumulative")]
    assert cumulative >= 2 and others == [0, 0, 0]
    assert set(result.spans["state"]) <= {"open", "half_open"}
    assert len(result.figure().data) == 3


def test_compare_policies_simulated_trip_time_agrees_with_theory() -> None:
    # 30% errors, 3 in a row: theory says (1 - p^k) / ((1 - p) p^k) ~ 51 calls.
    theory = expected_calls_until_trip(0.3, 3)
    firsts = []
    for seed in range(40):
        r = compare_policies(0.3, rate=100, duration=20, failure_threshold=3, seed=seed,
                             policies={"consecutive": ConsecutiveFailures()})
        firsts.append(r.summary["first_trip_s"].iloc[0] * 100 + 1)
    mean = sum(firsts) / len(firsts)
    assert theory * 0.7 < mean < theory * 1.3


# --- patterns ------------------------------------------------------------------------------


def test_retries_without_a_breaker_keep_the_backend_overloaded() -> None:
    spec = RetrySpec(duration=60, slowdown=(10, 20))
    storm = simulate_retries(spec)
    calm = simulate_retries(RetrySpec(**{**spec.__dict__, "max_retries": 0}))
    guarded = simulate_retries(spec, breaker=CircuitBreakerConfig(failure_threshold=10, timeout=2))
    s_storm, s_calm, s_guarded = (r.summaries for r in (storm, calm, guarded))
    assert s_storm["amplification"] > 2.5
    assert s_storm["recovered_at_s"] is None  # still down when the run ends
    assert s_calm["recovered_at_s"] is not None
    assert s_guarded["recovered_at_s"] is not None and s_guarded["amplification"] < 1.2
    assert s_guarded["availability_pct"] > s_storm["availability_pct"] + 30


def test_retry_simulation_is_deterministic() -> None:
    spec = RetrySpec(duration=30, slowdown=(5, 10))
    a, b = simulate_retries(spec), simulate_retries(spec)
    assert a.timeline.equals(b.timeline)


def test_bulkhead_protects_the_healthy_dependency() -> None:
    spec = BulkheadSpec(duration=40, hang=(10, 30))
    shared = simulate_bulkhead(spec).summaries
    walled = simulate_bulkhead(spec, bulkhead={"orders": 4}).summaries
    assert shared["users_availability_pct"] < 80
    assert walled["users_availability_pct"] > 99
    assert walled["orders_workers_held"] <= 4


def test_pattern_figures_build() -> None:
    from cblab.lab import compare_bulkheads, compare_retries

    retries = compare_retries(RetrySpec(duration=30, slowdown=(5, 10)))
    assert len(retries.summary) == 4 and len(retries.figure().data) == 8
    bulk = compare_bulkheads(BulkheadSpec(duration=30, hang=(5, 20)))
    assert len(bulk.summary) == 3 and len(bulk.figure().data) == 6


# --- params ----------------------------------------------------------------------------------


def test_params_from_env() -> None:
    params = LabParams.from_env({
        "CBLAB_RUN_SECONDS": "12", "CBLAB_WAIT": "1", "CBLAB_UPDATE_HZ": "8",
        "CBLAB_BREAKER_TIMEOUT": "0.5", "CBLAB_AUTOPILOT": "4:error_rate=0, 1:error_rate=100",
        "CBLAB_EXPECT_STATES": "open,closed", "CBLAB_QUICK": "yes",
    })
    assert params.run_seconds == 12 and params.wait and params.headless and params.quick
    assert params.update_hz == 8 and params.breaker_timeout == 0.5
    assert [(s.at, s.control, s.value) for s in params.autopilot] == [
        (1.0, "error_rate", 100.0), (4.0, "error_rate", 0.0)]
    assert params.expect_states == {"open", "closed"}
    assert LabParams.from_env({}) == LabParams()


@pytest.mark.parametrize(("env", "message"), [
    ({"CBLAB_RUN_SECONDS": "soon"}, "CBLAB_RUN_SECONDS must be a number"),
    ({"CBLAB_UPDATE_HZ": "100"}, "CBLAB_UPDATE_HZ must be between 1 and 20"),
    ({"CBLAB_WAIT": "maybe"}, "CBLAB_WAIT must be 0 or 1"),
    ({"CBLAB_AUTOPILOT": "error_rate=1"}, "SECONDS:CONTROL=VALUE"),
    ({"CBLAB_EXPECT_STATES": "ajar"}, "unknown state"),
])
def test_bad_params_are_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        LabParams.from_env(env)


def test_autopilot_keeps_text_values() -> None:
    assert parse_autopilot("2:outage=hang")[0].value == "hang"


# --- LiveFeed ----------------------------------------------------------------------------------


def server_call(t: float, outcome: str = "success", state: str = "closed",
                after: str | None = None, variant: str = "protected") -> dict:
    return event_row(kind="call", t=t, source="server", variant=variant, breaker="github",
                     tool="github_user", outcome=outcome, latency=0.0 if outcome == "rejected"
                     else 0.02, state=state, state_after=after or state)


def load_call(t: float, outcome: str = "success", variant: str = "protected") -> dict:
    return event_row(kind="call", t=t, source="load", variant=variant, breaker="github",
                     tool="github_user", outcome=outcome,
                     latency=0.001 if outcome == "rejected" else 0.025)


def state_row(t: float, before: str, after: str, variant: str = "protected") -> dict:
    return event_row(kind="state", t=t, source="server", variant=variant, breaker="github",
                     state=before, state_after=after, reason="test")


def test_feed_tracks_state_and_shifts_clocks() -> None:
    feed = LiveFeed(window_s=30)
    feed.add([server_call(1.0), state_row(2.0, "closed", "open"),
              server_call(2.5, "rejected", "open")], offset=10.0)
    feed.add([load_call(0.5), load_call(1.5, "rejected")], offset=11.0)
    feed.advance(14.0)
    assert feed.state == {"protected": "open"}
    assert feed.states_seen["protected"] == {"closed", "open"}
    assert feed.transitions[-1].t == pytest.approx(12.0)
    frame = feed.frame()
    assert sorted(frame["t"]) == pytest.approx([11.0, 11.5, 12.0, 12.5, 12.5])
    summary = feed.summary()["protected"]
    assert summary["calls"] == 2 and summary["success_rate"] == 0.5 and summary["trips"] == 1


def test_feed_drops_other_breakers_and_breakerless_calls() -> None:
    feed = LiveFeed()
    other = event_row(kind="call", t=1.0, source="server", breaker="database", outcome="success")
    status = event_row(kind="call", t=1.0, source="server", tool="circuit_status",
                       outcome="success")
    assert feed.add([other, status]) == 0


def test_feed_window_and_memory_are_bounded() -> None:
    feed = LiveFeed(window_s=10, max_rows=500, record_rows=300)
    for second in range(200):
        feed.add([load_call(second + i / 10) for i in range(10)])
        feed.advance(second + 1.0)
    assert len(feed) <= 10 * (10 + 5 + 2 + 1)  # window + success window + margins
    assert feed.recording.in_memory < 300  # the rest of the recording is on disk
    assert len(feed.recording) == 2000 and len(feed.recorded_frame()) == 2000
    assert min(feed.frame()["t"]) >= 200 - 10 - 5 - 2 - 1


def test_feed_arrays_cover_every_chart_and_stay_window_sized() -> None:
    feed = LiveFeed(window_s=20)
    t = 0.0
    state = "closed"
    rows = []
    while t < 600:
        if int(t) % 60 == 30 and state == "closed":
            rows.append(state_row(t, "closed", "open"))
            state = "open"
        elif int(t) % 60 == 40 and state == "open":
            rows.append(state_row(t, "open", "closed"))
            state = "closed"
        outcome = "rejected" if state == "open" else "success"
        rows += [server_call(t, outcome, state), load_call(t, outcome)]
        t += 0.1
    feed.add(rows)
    feed.advance(600.0)
    arrays = feed.arrays()
    assert set(arrays) == {"state", "latency", "success", "backend"}
    bands = arrays["state"]
    assert bands["closed"].y and all(b >= 550 for b in bands["closed"].base)
    latency = arrays["latency"][("protected", "success")]
    assert min(latency.x) >= 600 - 20 - 5 - 3 and max(latency.x) <= 600
    success = arrays["success"]["protected"]
    assert len(success.x) <= (20 + 5 + 5) * 5 + 5  # window-sized, not run-sized
    backend = arrays["backend"][("protected", "backend")]
    assert len(backend.x) <= 32 and max(backend.x) + 1.0 <= 600
    assert feed.x_range == (580.0, 605.0)  # the last 20 s, on an axis moving in 5 s steps
    feed.advance(603.0)
    assert feed.x_range == (580.0, 605.0)  # unchanged: no relayout for the browser
    feed.advance(605.0)
    assert feed.x_range == (585.0, 610.0)


def test_feed_recorded_frame_is_in_time_order() -> None:
    feed = LiveFeed()
    feed.add([load_call(2.0), server_call(1.0), load_call(0.5)])
    assert list(feed.recorded_frame()["t"]) == [0.5, 1.0, 2.0]


# --- LiveLab wiring (widgets, no stack) -------------------------------------------------------


def test_live_lab_refuses_impossible_breaker_settings_with_a_message() -> None:
    from cblab.lab import LiveLab

    lab = LiveLab(LabParams())
    lab.set(half_open_max_calls=2)
    assert "breaker" in lab.session._pending and "applying" in lab.config_message.value
    lab.set(success_threshold=3)
    message = lab.config_message.value
    assert "Not applied" in message and "half_open_max_calls" in message
    assert "breaker" not in lab.session._pending  # nothing invalid is ever sent
    with pytest.raises(KeyError, match="no control"):
        lab.set(colour="red")


def test_session_refuses_unknown_controls_and_out_of_range_values() -> None:
    from cblab.lab import LabSession

    session = LabSession(LabParams(), controls=("rate", "error_rate"))
    with pytest.raises(KeyError, match="no control 'timeout'"):
        session.set(timeout=3)
    with pytest.raises(ValueError, match="error_rate must be between 0 and 100"):
        session.set(error_rate=150)
    with pytest.raises(ValueError, match="unknown control"):
        LabSession(LabParams(), controls=("colour",))


def test_live_lab_autopilot_moves_the_controls() -> None:
    from cblab.lab import LiveLab

    params = LabParams.from_env({"CBLAB_AUTOPILOT": "1:error_rate=100,2:outage=hang,3:timeout=2.5"})
    lab = LiveLab(params)
    narrow = LiveLab(params, controls=("rate",))
    narrow.session._play_autopilot(5.0)
    assert [s.control for s in narrow.autopilot_skipped] == ["error_rate", "outage", "timeout"]
    lab.session._play_autopilot(1.5)
    lab._sync_controls()
    assert lab.controls["error_rate"].value == 100 and lab.controls["outage"].value == "up"
    lab.session._play_autopilot(5.0)
    lab._sync_controls()
    assert lab.controls["outage"].value == "hang" and lab.controls["timeout"].value == 2.5
    assert set(lab.session._pending) == {"error_rate", "outage", "breaker"}


def test_live_lab_builds_every_control_from_the_table() -> None:
    import ipywidgets as W

    from cblab.lab import LiveLab
    from cblab.lab.controls import CONTROLS

    lab = LiveLab(LabParams())
    assert list(lab.controls) == [c.name for c in CONTROLS]
    for c in CONTROLS:
        widget = lab.controls[c.name]
        assert widget.description == c.label
        assert isinstance(widget, {"int": W.IntSlider, "float": W.FloatSlider,
                                   "choice": W.ToggleButtons}[c.kind])
    # the outage buttons' label sits beside them, like the sliders' labels
    assert lab.controls["outage"].layout.flex_flow == "row"


def test_live_lab_with_a_scenario_hides_the_fault_sliders_and_fits_the_run() -> None:
    from cblab.lab import LiveLab

    lab = LiveLab(LabParams(run_seconds=30), scenario="outage-and-recovery",
                  config={"failure_threshold": 3, "timeout": 5})
    assert not {"error_rate", "latency_ms", "outage"} & set(lab.controls)
    assert lab.scenario.total_duration_s == pytest.approx(30)
    assert (lab.config.failure_threshold, lab.config.timeout) == (3, 5.0)


def test_feed_thins_the_latency_chart_but_keeps_rare_outcomes() -> None:
    feed = LiveFeed(window_s=60, max_points=300)
    rows = [load_call(i / 50) for i in range(3000)]  # 60 s at 50 calls/s
    rows += [load_call(30.0 + i / 10, "failure") for i in range(20)]
    feed.add(rows)
    feed.advance(60.0)
    latency = feed.arrays()["latency"]
    assert len(latency[("protected", "failure")].x) == 20
    success = latency[("protected", "success")]
    assert 250 <= len(success.x) <= 320 and max(success.x) == pytest.approx(59.98)


# --- the live dashboard figure (plain plotly) ---------------------------------------------------


def test_dashboard_traces_match_the_feed_arrays() -> None:
    from cblab.lab.dashboard import apply_arrays, live_figure

    fig = live_figure(["protected", "unprotected"], "github")
    charts = {trace.meta[0] for trace in fig.data}
    assert charts == {"state", "latency", "success", "backend"}
    placeholder = next(t for t in fig.data if list(t.meta) == ["state", "none"])
    assert list(placeholder.y) == ["protected · github", "unprotected · github"]

    feed = LiveFeed(window_s=30)
    feed.add([server_call(1.0), state_row(2.0, "closed", "open"),
              server_call(2.5, "rejected", "open"), load_call(1.0), load_call(2.5, "rejected")])
    feed.advance(5.0)
    cache: dict = {}
    assert apply_arrays(fig, feed.arrays(), cache, legend_variant="protected") > 0
    by_meta = {tuple(t.meta): t for t in fig.data}
    assert list(by_meta[("state", "open")].base) == [2.0]
    assert list(by_meta[("latency", "protected", "rejected")].x) == [2.5]
    assert by_meta[("latency", "protected", "rejected")].showlegend
    assert not by_meta[("latency", "unprotected", "success")].x
    assert apply_arrays(fig, feed.arrays(), cache) == 0  # nothing new: nothing sent


def test_live_figure_widget_acknowledgements_raise_nothing_in_the_kernel() -> None:
    """What the browser sends back after each drawn update (``_js2py_traceDeltas``: the
    defaults plotly.js filled in, per trace) is handled without an error. With numpy
    arrays in the traces this raised "The truth value of an array ... is ambiguous"
    inside the kernel, where only JupyterLab's log console showed it."""
    import numpy as np
    import plotly.graph_objects as go

    from cblab.lab.dashboard import apply_arrays, live_figure

    widget = go.FigureWidget(live_figure(["protected", "unprotected"], "github"))
    feed = LiveFeed(window_s=30)
    feed.add([server_call(1.0), state_row(2.0, "closed", "open"),
              server_call(2.5, "rejected", "open"), load_call(1.0), load_call(2.5, "rejected")])
    feed.advance(5.0)
    with widget.batch_update():
        apply_arrays(widget, feed.arrays(), {}, legend_variant="protected")
    for trace in widget.data:  # what the trace holds for plotly's delta handling
        for prop in ("x", "y", "base", "customdata"):
            assert not isinstance(trace._props.get(prop), np.ndarray), (trace.meta, prop)
    # The acknowledgement of that update, shaped as the browser sends it: per trace,
    # the properties of plotly.js's full data that differ from the data it was given.
    deltas = [{"uid": t.uid, "visible": True, "index": i, "marker": {"line": {"width": 0}},
               "hoverlabel": {"namelength": 15, "font": {"size": 13}}}
              for i, t in enumerate(widget.data)]
    widget._js2py_traceDeltas = {"trace_edit_id": widget._last_trace_edit_id,
                                 "trace_deltas": deltas}
    assert widget.data[0]._prop_defaults.get("visible") is True  # it was applied


# --- tables a person reads -----------------------------------------------------------------


def test_readable_table_picks_labels_rounds_and_hides_the_index() -> None:
    import pandas as pd

    from cblab.lab import readable_table

    frame = pd.DataFrame({"policy": ["a", "b"], "trips": [15, 0], "first_trip_s": [7.5512, None],
                          "rejected_pct": [70.425, 0.0], "ignored": [1, 2]})
    styler = readable_table(frame, {"policy": "policy", "first_trip_s": "first trip (s)",
                                    "rejected_pct": "rejected (%)", "trips": "trips"},
                            missing="never")
    shown = styler.data
    assert list(shown.columns) == ["policy", "first trip (s)", "rejected (%)", "trips"]
    assert shown.iloc[0].tolist() == ["a", "7.55", "70.4", "15"]
    assert shown.iloc[1].tolist() == ["b", "never", "0", "0"]
    html = styler.to_html()
    assert "ignored" not in html and "white-space: normal" in html
    assert 'class="row_heading' not in html  # the index is hidden


def test_lab_params_show_as_a_table_with_their_variables() -> None:
    from cblab.lab import LabParams

    params = LabParams.from_env({"CBLAB_UPDATE_HZ": "4", "CBLAB_AUTOPILOT": "2:error_rate=1"})
    table = params.table().set_index("parameter")
    assert table.loc["update_hz", "value"] == 4 and table.loc["update_hz", "set by"] == "CBLAB_UPDATE_HZ"
    assert table.loc["autopilot", "value"] == "2: error_rate=1"
    assert table.loc["run_seconds", "value"] == "until Stop"
    assert set(table.index) == set(LabParams.__dataclass_fields__)  # none forgotten
    assert "CBLAB_CHART_POINTS" in params._repr_html_()
