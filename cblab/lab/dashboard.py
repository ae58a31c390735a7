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

__all__ = ["LATENCY_OUTCOMES", "STATE_NAMES", "apply_arrays", "live_figure"]

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
        chart, *rest = trace.meta
        if chart == "state" and not have_state:
            continue
        key = rest[0] if len(rest) == 1 else tuple(rest)
        data = arrays[chart].get(key)
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
