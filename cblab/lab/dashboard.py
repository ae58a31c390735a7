"""The live lab's chart: one figure, four stacked charts, refreshed in place.

Pure plotly, no widgets: `live_figure` builds the figure once (every trace exists
from the start, empty, its `meta` = [chart, *key] as `LiveFeed.arrays()` keys
them), and `apply_arrays` assigns a new window of arrays to it, touching only the
traces whose data changed. `LiveLab` wraps the figure in a `FigureWidget` and calls
`apply_arrays` inside `batch_update()`; a test or a report can use a plain Figure.

One figure rather than four: a FigureWidget carries its ~5 MB of JavaScript per
instance, and one update message per tick is cheaper than four.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..plots.figures import LOG_MS_TICKS, LOG_MS_TICKTEXT
from ..plots.style import (
    FONT_FAMILY,
    NO_BREAKER_COLOR,
    OUTCOME_COLORS,
    STATE_COLORS,
    variant_colors,
)

__all__ = ["LATENCY_OUTCOMES", "STATE_NAMES", "LiveChart", "apply_arrays", "live_figure"]

LATENCY_OUTCOMES = ("success", "slow", "failure", "timeout", "rejected", "cancelled")
STATE_NAMES = {"closed": "CLOSED", "open": "OPEN", "half_open": "HALF-OPEN"}


def live_figure(
    variants: Sequence[str], breaker: str, x_range: tuple[float, float] = (0.0, 15.0),
    dependency: str = "backend",
) -> go.Figure:
    """Breaker state band, latency per request (a row per variant), rolling success
    rate, and requests per second reaching the `dependency` ("backend" for the demo
    stack, "target" for a server of your own), sharing one time axis."""
    variants = list(variants)
    n = len(variants)
    rows = ["state", *[f"latency:{v}" for v in variants], "success", "backend"]
    heights = [0.05 + 0.04 * n, *[0.36 / n] * n, 0.22, 0.24]
    latency_title = "Latency per request (ms, log scale)"
    titles = [
        "Breaker state",
        *[latency_title if n == 1 else f"{latency_title}: {v}" for v in variants],
        "Success rate (rolling 5 s)",
        f"Requests per second reaching the {dependency}",
    ]
    fig = make_subplots(rows=len(rows), cols=1, shared_xaxes=True, row_heights=heights,
                        vertical_spacing=0.055, subplot_titles=titles)
    colours = variant_colors(variants)
    bands = [f"{v} · {breaker}" if n > 1 else breaker for v in variants]
    for state in ("closed", "half_open", "open", "none"):
        name = STATE_NAMES.get(state, "no breaker")
        fig.add_trace(go.Bar(
            x=[], y=[], base=[], orientation="h", name=name, width=0.7,
            marker={"color": STATE_COLORS.get(state, NO_BREAKER_COLOR), "line": {"width": 0}},
            meta=["state", state], legend="legend", showlegend=state != "none",
            hovertemplate=f"<b>{name}</b> %{{base:.1f}}–%{{customdata[0]:.1f}} s"
            "<br>%{customdata[1]}<extra>%{y}</extra>",
        ), row=1, col=1)
    for i, v in enumerate(variants):
        for outcome in LATENCY_OUTCOMES:
            fig.add_trace(go.Scatter(
                x=[], y=[], mode="markers", name=outcome, legendgroup=outcome,
                legend="legend2", showlegend=False, meta=["latency", v, outcome],
                marker={"color": OUTCOME_COLORS[outcome], "size": 5, "opacity": 0.75},
                hovertemplate=f"{outcome}: %{{y:.1f}} ms at %{{x:.1f}} s<extra>{v}</extra>",
            ), row=2 + i, col=1)
    # The first variant (protected) is drawn last, on top; the others dashed, so a line
    # under an identical one still shows.
    for i, v in reversed(list(enumerate(variants))):
        fig.add_trace(go.Scatter(
            x=[], y=[], mode="lines", name=v, legendgroup=v, legend="legend3",
            line={"color": colours[v], "width": 3 if i == 0 else 2,
                  "dash": "solid" if i == 0 else "dash"},
            meta=["success", v], connectgaps=False,
            hovertemplate="%{y:.0%} at %{x:.1f} s<extra>" + v + "</extra>",
        ), row=2 + n, col=1)
    for v in variants:
        for which in ("backend", "offered"):
            backend = which == "backend"
            fig.add_trace(go.Scatter(
                x=[], y=[], mode="lines", legendgroup=f"{v}-load", legend="legend4",
                name=f"{v} · {'reached backend' if backend else 'offered'}",
                line={"color": colours[v], "width": 2.5 if backend else 1.3,
                      "dash": "solid" if backend else "dot", "shape": "hv"},
                meta=["backend", v, which],
                hovertemplate="%{y:.0f} req/s at %{x:.0f} s<extra>%{fullData.name}</extra>",
            ), row=3 + n, col=1)
    fig.update_layout(
        template="plotly_white", height=560 + 210 * n, barmode="overlay", autosize=True,
        margin={"l": 64, "r": 170, "t": 34, "b": 45}, uirevision="live", hovermode="closest",
        font={"family": FONT_FAMILY, "size": 12, "color": "#1f2933"},
        meta={"cblab": "live-lab"},
    )
    # One legend beside each chart it explains.
    tops = {r: fig.get_subplot(i + 1, 1).yaxis.domain[1] for i, r in enumerate(rows)}
    legends = {"legend": "state", "legend2": f"latency:{variants[0]}", "legend3": "success",
               "legend4": "backend"}
    for legend, row in legends.items():
        fig.update_layout({legend: {
            "x": 1.01, "xanchor": "left", "y": tops[row], "yanchor": "top", "font": {"size": 11},
            "bgcolor": "rgba(255,255,255,0.85)", "tracegroupgap": 2,
        }})
    fig.update_yaxes(categoryorder="array", categoryarray=bands[::-1], showgrid=False,
                     row=1, col=1)
    for i in range(n):
        fig.update_yaxes(type="log", tickvals=LOG_MS_TICKS, ticktext=LOG_MS_TICKTEXT,
                         title_text="ms", row=2 + i, col=1)
    fig.update_yaxes(range=[-0.03, 1.05], tickformat=".0%", row=2 + n, col=1)
    fig.update_yaxes(rangemode="tozero", title_text="req/s", row=3 + n, col=1)
    # Every update redraws every axis: "allow" skips measuring each tick label against
    # the page (12 % of the browser's time in the live lab, profiled in Chromium), and
    # fixed margins (wide enough for the legends) skip the automatic margin pass.
    fig.update_xaxes(range=list(x_range), showticklabels=True, ticklabeloverflow="allow")
    fig.update_yaxes(ticklabeloverflow="allow")
    fig.update_layout(margin_autoexpand=False)
    fig.update_xaxes(title_text="seconds since the lab started", row=len(rows), col=1)
    # The state band's rows exist from the start, so the chart is readable at once.
    placeholder = next(t for t in fig.data if tuple(t.meta) == ("state", "none"))
    placeholder.update(y=bands, x=[0.0] * n, base=[0.0] * n, customdata=[[0.0, "starting"]] * n)
    return fig


def _floats(values: Sequence[float | None]) -> list[float | None]:
    """Plain floats (None and NaN -> None, a gap), never a numpy array.

    A FigureWidget sends a numpy array to the browser as a typed array, and the
    browser's acknowledgement of the edit (``_js2py_traceDeltas``) describes typed
    arrays as ``{dtype, shape, value}`` dicts; plotly's handler then recurses into
    the numpy array it holds and asks ``not array``: "The truth value of an array
    with more than one element is ambiguous", logged by the kernel on every
    acknowledged update. Lists travel as JSON and compare as lists."""
    return [None if v is None or v != v else float(v) for v in values]


def _trace_data(arrays: dict[str, dict[Any, Any]], trace: Any) -> tuple[str, Any, Any]:
    """A trace's chart, its key in `arrays` (from its `meta`) and its data there (None:
    no data for it yet)."""
    chart, *rest = trace.meta
    key = rest[0] if len(rest) == 1 else tuple(rest)
    return chart, key, arrays[chart].get(key)


def apply_arrays(
    fig: go.Figure,
    arrays: dict[str, dict[Any, Any]],
    cache: dict[int, tuple[Any, ...]],
    *,
    legend_variant: str | None = None,
) -> int:
    """Assign `arrays` (`LiveFeed.arrays()`) to `fig`'s traces; return how many changed.

    `cache` remembers what each trace last got, so unchanged traces send nothing.
    Until the server reports a state, the placeholder state band stays. A latency
    trace shows in the legend once it has points (for `legend_variant` only).
    """
    have_state = any(bars.y for bars in arrays["state"].values())
    changed = 0
    for i, trace in enumerate(fig.data):
        chart, key, data = _trace_data(arrays, trace)
        if chart == "state" and not have_state:
            continue
        values: tuple[Any, ...] = tuple(data) if data is not None else ()
        if cache.get(i) == values:
            continue
        cache[i] = values
        changed += 1
        if chart == "state":
            y, base, x, custom = values or ((), (), (), ())
            trace.update(y=y, base=_floats(base), x=_floats(x), customdata=custom)
        else:
            x, y = values or ((), ())
            trace.update(x=_floats(x), y=_floats(y))
            if chart == "latency":
                trace.showlegend = bool(x) and key[0] == legend_variant
    return changed


# Plotly.animate with a zero transition and ``redraw: false`` moves only the changed
# traces' points and lines (plotly's transition path); Plotly.update, which
# `batch_update` sends, replots every subplot, axis, legend and title (measured in
# Chromium, benchmarks/bench_drawcost.py: 31 against 114 ms of main-thread time per
# redraw). It leaves the axes and legends as they are, so `LiveChart` sets every
# range itself and sends a full update whenever one of them, or a legend, changes.
_TRACES_ONLY = {"transition": {"duration": 0}, "frame": {"duration": 0, "redraw": False},
                "mode": "immediate"}


class LiveChart:
    """The live figure and what it last showed. `refresh` sends what changed: only the
    traces' data while every axis range and legend stays, else a full update."""

    def __init__(self, fig: go.Figure, *, legend_variant: str | None = None) -> None:
        self.fig = fig
        self.legend_variant = legend_variant
        self.cache: dict[int, tuple[Any, ...]] = {}
        self.full_updates = 0
        self.trace_updates = 0
        self._layout: dict[str, Any] = {}
        self._filled_before: tuple[bool | None, ...] = ()
        # chart -> the y axes of its rows (one per variant for the latency chart)
        self._axes: dict[str, list[str]] = {}
        for trace in fig.data:
            axes = self._axes.setdefault(trace.meta[0], [])
            if f"yaxis{trace.yaxis[1:]}" not in axes:
                axes.append(f"yaxis{trace.yaxis[1:]}")
        self._state_axis = self._axes["state"][0]
        self._bands = [i for i, trace in enumerate(fig.data) if trace.meta[0] == "state"]
        self._categories = list(fig.layout[self._state_axis].categoryarray or ())

    def refresh(self, arrays: dict[str, dict[Any, Any]], x_range: tuple[float, float]) -> int:
        """Show `arrays` (`LiveFeed.arrays()`) on `x_range`; return how many traces changed."""
        layout = self.layout(arrays, x_range)
        filled = self._filled(arrays)
        full = layout != self._layout or filled != self._filled_before
        edits = {key: value for key, value in layout.items() if self._layout.get(key) != value}
        self._layout, self._filled_before = layout, filled
        fig = self.fig
        if full or not hasattr(fig, "_perform_batch_animate"):  # a plain Figure: no browser
            with fig.batch_update():
                changed = apply_arrays(fig, arrays, self.cache, legend_variant=self.legend_variant)
                fig.update_layout(edits)
            self.full_updates += 1
            return changed
        # FigureWidget.batch_animate, with plotly.js's `redraw` option it does not offer.
        fig._in_batch_mode = True
        try:
            changed = apply_arrays(fig, arrays, self.cache, legend_variant=self.legend_variant)
            # plotly.js's bar transition keeps only the bar traces it is given (the
            # others vanish from the page): a state band edit carries every band trace.
            edits = fig._batch_trace_edits
            if any(i in edits for i in self._bands):
                for i in self._bands:
                    bars = fig.data[i]
                    edits.setdefault(i, {}).update(
                        {prop: edits.get(i, {}).get(prop, bars[prop])
                         for prop in ("x", "y", "base", "customdata")})
        finally:
            fig._in_batch_mode = False
            fig._perform_batch_animate(_TRACES_ONLY)
        self.trace_updates += 1
        return changed

    def layout(self, arrays: dict[str, dict[Any, Any]],
               x_range: tuple[float, float]) -> dict[str, Any]:
        """Every axis range the chart shows, as plotly's autorange would draw it (nicer
        steps, so it changes seldom): the time axis, the state band's rows, the latency
        decades and the request rate from zero."""
        out: dict[str, Any] = {f"{name}.range": list(x_range)
                               for name in self.fig.layout if name.startswith("xaxis")}
        # A category axis spans every row it knows (its categoryarray and any new one).
        rows = set(self._categories)
        for bars in arrays["state"].values():
            rows.update(bars.y)
        out[f"{self._state_axis}.range"] = [-0.5, len(rows) - 0.5]
        spans: dict[str, list[float]] = {}  # latency axis -> its points (ms)
        for trace in self.fig.data:
            chart, _, xy = _trace_data(arrays, trace)
            if chart == "latency":
                spans.setdefault(f"yaxis{trace.yaxis[1:]}.range", []).extend(
                    y for y in (xy.y if xy else ()) if y and y > 0)
        for name, ms in spans.items():
            out[name] = self._sticky(name, _log_range(ms and (min(ms), max(ms))), ms, 1.0)
        rate = [y for xy in arrays["backend"].values() for y in xy.y if y is not None]
        for axis in self._axes["backend"]:
            name = f"{axis}.range"
            out[name] = self._sticky(name, [0.0, _nice_ceiling(max(rate, default=0.0))], rate,
                                     None)
        return out

    def _sticky(self, name: str, fresh: list[float], values: Sequence[float],
                 log_slack: float | None) -> list[float]:
        """The range shown now while `values` still fit it and fill enough of it (on a
        log axis: the fresh range is within `log_slack` decades of it each side; else:
        the top value is above 40 % of it), so the axis does not jump with every tick."""
        shown = self._layout.get(name)
        if shown is None or not values:
            return fresh
        low, high = shown
        if log_slack is not None:
            fits = 10 ** low <= min(values) and max(values) <= 10 ** high
            full = fresh[0] - low <= log_slack and high - fresh[1] <= log_slack
        else:
            fits, full = max(values) <= high, max(values) >= 0.4 * high
        return list(shown) if fits and full else fresh

    def _filled(self, arrays: dict[str, dict[Any, Any]]) -> tuple[bool | None, ...]:
        """Which traces have data (None: the state band's placeholder stays). A trace
        that fills or empties changes the legend, and plotly's transition path draws
        no trace that was empty (a first OPEN bar): both need a full update."""
        have_state = any(bars.y for bars in arrays["state"].values())
        out: list[bool | None] = []
        for trace in self.fig.data:
            chart, _, data = _trace_data(arrays, trace)
            out.append(None if chart == "state" and not have_state else bool(data and data[0]))
        return tuple(out)


def _log_range(span: Sequence[float] | None) -> list[float]:
    """A log axis' range (powers of ten) covering `span` (ms) with a margin, in half
    decades; 1 ms to 1 s before there is data."""
    if not span:
        return [0.0, 3.0]
    return [math.floor(2 * math.log10(span[0] / 1.25)) / 2,
            math.ceil(2 * math.log10(span[1] * 1.25)) / 2]


def _nice_ceiling(value: float) -> float:
    """`value` plus 5 %, rounded up to half a power of ten (27 -> 30, 140 -> 150; 1 for 0)."""
    if not value > 0:
        return 1.0
    target = value * 1.05
    step = 10.0 ** math.floor(math.log10(target)) / 2
    return math.ceil(target / step) * step
