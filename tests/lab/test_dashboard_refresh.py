"""LiveChart: a tick that changes no axis or legend moves only the traces (Plotly.animate
without a redraw); anything else is a full update carrying every range plotly would
otherwise have computed itself."""

from __future__ import annotations

import math
from typing import Any

import plotly.graph_objects as go

from cblab.lab.dashboard import LiveChart, live_figure
from cblab.lab.feed import LiveFeed
from cblab.schema import event_row


def _call(t: float, source: str, latency: float, outcome: str = "success",
          variant: str = "protected") -> dict[str, Any]:
    return event_row(kind="call", t=t, source=source, variant=variant, breaker="github",
                     tool="github_user", outcome=outcome, latency=latency, state="closed",
                     state_after="closed")


def _calls(t: float, latency: float, variant: str = "protected") -> list[dict[str, Any]]:
    return [_call(t, "server", latency, variant=variant), _call(t, "load", latency, variant=variant)]


def _captured(widget: go.FigureWidget) -> list[tuple[str, Any, Any, Any]]:
    """What the widget sends its browser view: ("update"|"animate", data, layout, options)."""
    sent: list[tuple[str, Any, Any, Any]] = []

    def update(restyle_data: Any, relayout_data: Any, trace_indexes: Any = None,
               source_view_id: Any = None) -> None:
        sent.append(("update", restyle_data, relayout_data, None))

    def animate(styles_data: Any, relayout_data: Any, trace_indexes: Any,
                animation_opts: Any) -> None:
        sent.append(("animate", styles_data, relayout_data, animation_opts))
        widget._last_animate_traces = list(trace_indexes)  # type: ignore[attr-defined]

    widget._send_update_msg = update  # type: ignore[method-assign]
    widget._send_animate_msg = animate  # type: ignore[method-assign]
    return sent


def _feed() -> LiveFeed:
    feed = LiveFeed(window_s=30, breaker="github")
    for i in range(20):
        feed.add(_calls(0.5 * i, 0.020 + 0.001 * (i % 5)) + _calls(0.5 * i, 0.030, "unprotected"))
    feed.advance(10.0)
    return feed


def _shown() -> tuple[go.FigureWidget, list[tuple[str, Any, Any, Any]], LiveChart, LiveFeed]:
    """A two-variant live widget (its messages captured), its chart, and the feed it
    has shown once."""
    widget = go.FigureWidget(live_figure(["protected", "unprotected"], "github"))
    sent = _captured(widget)
    chart = LiveChart(widget, legend_variant="protected")
    feed = _feed()
    chart.refresh(feed.arrays(), feed.x_range)
    return widget, sent, chart, feed


def test_a_tick_within_the_axes_moves_only_the_traces() -> None:
    widget, sent, chart, feed = _shown()
    assert [kind for kind, *_ in sent] == ["update"]  # the first: ranges and legends
    layout = sent[0][2]
    assert layout["xaxis.range"] == list(feed.x_range)

    feed.add(_calls(10.2, 0.022))
    feed.advance(10.4)
    assert chart.refresh(feed.arrays(), feed.x_range) > 0
    kind, data, layout, options = sent[-1]
    assert kind == "animate" and options["frame"]["redraw"] is False
    assert layout == {}  # nothing but trace data
    assert any(10.2 in (trace.get("x") or []) for trace in data)
    assert (chart.full_updates, chart.trace_updates) == (1, 1)
    # plotly.js's bar transition drops the bar traces it is not given: the state band
    # (its current bar grows every tick) goes out whole, every band trace with its bars.
    bands = [i for i, trace in enumerate(widget.data) if trace.meta[0] == "state"]
    sent_traces = widget._last_animate_traces  # type: ignore[attr-defined]
    assert set(bands) <= set(sent_traces)
    for i in bands:
        edit = data[sent_traces.index(i)]
        assert list(edit["y"]) == list(widget.data[i].y)


def test_a_new_range_or_legend_entry_is_a_full_update() -> None:
    _, sent, chart, feed = _shown()
    # A 2 s call lifts the latency axis (two decades above 20 ms).
    feed.add(_calls(10.2, 2.0))
    feed.advance(10.4)
    chart.refresh(feed.arrays(), feed.x_range)
    assert sent[-1][0] == "update"
    lifted = {key: value for key, value in sent[-1][2].items() if key.endswith(".range")}
    assert any(value[1] >= math.log10(2000) for value in lifted.values())
    # A first failure adds "failure" to the protected variant's legend.
    feed.add([_call(10.5, "server", 0.02, "failure"), _call(10.5, "load", 0.02, "failure")])
    feed.advance(10.6)
    chart.refresh(feed.arrays(), feed.x_range)
    assert sent[-1][0] == "update"
    # The time axis stepping on is one too.
    feed.advance(40.0)
    chart.refresh(feed.arrays(), feed.x_range)
    assert sent[-1][0] == "update" and sent[-1][2]["xaxis.range"] == list(feed.x_range)


def test_ranges_cover_the_data_as_plotly_autorange_would() -> None:
    fig = live_figure(["protected", "unprotected"], "github")
    chart = LiveChart(fig, legend_variant="protected")
    feed = _feed()
    arrays = feed.arrays()
    layout = chart.layout(arrays, feed.x_range)
    axis = {tuple(t.meta): f"yaxis{t.yaxis[1:]}.range" for t in fig.data}
    for variant in ("protected", "unprotected"):  # each latency row covers its own points
        ms = [y for (v, _), xy in arrays["latency"].items() if v == variant for y in xy.y]
        low, high = layout[axis[("latency", variant, "success")]]
        assert 10 ** low < min(ms) and max(ms) < 10 ** high
        assert high - low <= 2  # not a wide default: the points spread over the row
    rate = max(y for xy in arrays["backend"].values() for y in xy.y)
    low, high = layout[axis[("backend", "protected", "backend")]]
    assert low == 0 and rate < high <= 1.5 * rate
    rows = {y for bars in arrays["state"].values() for y in bars.y} | set(
        fig.layout.yaxis.categoryarray)
    assert layout[axis[("state", "closed")]] == [-0.5, len(rows) - 0.5]
    # A plain Figure (a report, a test) gets the same ranges in its layout.
    chart.refresh(arrays, feed.x_range)
    assert list(fig.layout[axis[("backend", "protected", "backend")][:-6]].range) == [low, high]
