"""Figure builders: an event frame in, a `plotly.graph_objects.Figure` out.

Pure (no I/O), fast on a few thousand rows, and fine with an empty frame
(an empty figure with a note). Each trace's `meta` holds the key of the
arrays it draws (see `cblab.plots.traces`), so a live chart can refresh a
figure in place with `set_trace_data(fig, <same trace-array function>(window))`.

Each figure is built in one go (traces and one layout dict), because every
separate plotly update re-validates the layout: a builder takes a few ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from . import traces as tr
from .style import (
    NO_BREAKER_COLOR,
    OUTCOME_ORDER,
    STATE_COLORS,
    STATE_LABELS,
    empty_figure,
    label,
    layout_dict,
    merge,
    outcome_color,
    phase_decorations,
    variant_colors,
)

__all__ = [
    "backend_load",
    "latency_distribution",
    "latency_scatter",
    "state_timeline",
    "success_rate",
]


#: Where a log latency axis draws latencies below it (a rejection takes ~0 s), ms.
LOG_FLOOR_MS = 0.1


#: Ticks of a log latency axis in ms: 1, 2 and 5 in every decade, so 30 ms can be
#: read between 20 and 50 (decades alone leave one "100" tick at healthy latencies).
LOG_MS_TICKS = [m * 10**e for e in range(-1, 6) for m in (1, 2, 5)]
LOG_MS_TICKTEXT = [f"{v:,g}" for v in LOG_MS_TICKS]
_LOG_LATENCY_AXIS = {
    "type": "log",
    "title": {"text": "latency (ms, log scale)"},
    "tickvals": LOG_MS_TICKS,
    "ticktext": LOG_MS_TICKTEXT,
}


def _ordered(keys: Iterable[str], order: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: (rank.get(k, len(order)), keys.index(k)))


def _with_phases(layout: dict[str, Any], events: pd.DataFrame, show: bool) -> dict[str, Any]:
    """Add the scenario phases (shading, boundaries, names) to a layout dict."""
    if not show:
        return layout
    spans = tr.phase_spans(events)
    if not spans:
        return layout
    shapes, annotations = phase_decorations(spans)
    margin = dict(layout["margin"])
    margin["t"] = max(margin.get("t", 0), 40) + 16
    return layout | {
        "shapes": [*layout.get("shapes", ()), *shapes],
        "annotations": [*layout.get("annotations", ()), *annotations],
        "margin": margin,
    }


def _figure(traces: Sequence[Any], layout: dict[str, Any]) -> go.Figure:
    return go.Figure(data=list(traces), layout=layout)


def state_timeline(
    events: pd.DataFrame,
    *,
    t_end: float | None = None,
    unprotected: Iterable[str] = (),
    title: str | None = "Breaker state",
    phases: bool = True,
) -> go.Figure:
    """A band per breaker (and variant) coloured by state over time.

    Traces: one horizontal-bar trace per state (closed, half_open, open) plus one
    ("none") for variants without a breaker; `meta` is the state, the keys of
    `state_bands(...).bars`. Variants in `unprotected` get a grey "no breaker" band
    (see `state_bands`).
    """
    events = tr.as_events(events)
    bands = tr.state_bands(events, t_end=t_end, unprotected=unprotected)
    if not bands.rows:
        return empty_figure("No breaker state in these events", title=title, height=200)
    traces = []
    for state, bars in bands.bars.items():
        name = STATE_LABELS.get(state, "no breaker")
        traces.append(
            go.Bar(
                y=[label(r) for r in bars.y],
                base=bars.base,
                x=bars.x,
                customdata=[[end, label(reason)] for end, reason in bars.customdata],
                orientation="h",
                name=name,
                marker={"color": STATE_COLORS.get(state, NO_BREAKER_COLOR), "line": {"width": 0}},
                width=0.62,
                meta=[state],
                showlegend=state in STATE_COLORS,
                hovertemplate=(
                    f"<b>{name}</b> %{{base:.2f}}–%{{customdata[0]:.2f}} s"
                    "<br>%{customdata[1]}<extra>%{y}</extra>"
                ),
            )
        )
    layout = merge(
        layout_dict(title=title, height=max(150 + 40 * len(bands.rows), 210)),
        {
            "barmode": "overlay",
            "bargap": 0.3,
            "yaxis": {
                "categoryorder": "array",
                "categoryarray": [label(r) for r in reversed(bands.rows)],
                "showgrid": False,
            },
            "xaxis": {"rangemode": "tozero"},
        },
    )
    return _figure(traces, _with_phases(layout, events, phases))


def latency_scatter(
    events: pd.DataFrame,
    *,
    log_y: bool = False,
    outcomes: Iterable[str] | None = None,
    title: str | None = "Latency per request",
    phases: bool = True,
) -> go.Figure:
    """Per-request latency (ms) over time coloured by outcome; a row per variant.

    Client view. On a log axis, latencies below 0.1 ms (rejections) sit on that floor.
    Traces keyed (variant, outcome), as `latency_points` returns.
    """
    events = tr.as_events(events)
    floor = LOG_FLOOR_MS if log_y else None
    points = tr.latency_points(events, outcomes=outcomes, min_ms=floor)
    if not points:
        return empty_figure("No calls yet", title=title)
    variants = list(dict.fromkeys(v for v, _ in points))
    outcome_order = _ordered((o for _, o in points), OUTCOME_ORDER)
    rows = len(variants)
    gap = 0.12 if rows > 1 else 0.0
    height = (1.0 - gap * (rows - 1)) / rows
    layout = layout_dict(title=title, height=120 + 220 * rows, xaxis_title=None)
    layout["legend"]["title"]["text"] = "outcome"
    traces = []
    legend_shown: set[str] = set()
    for row, v in enumerate(variants, start=1):
        suffix = "" if row == 1 else str(row)
        top = 1.0 - (row - 1) * (height + gap)
        ytitle = "latency (ms)"
        if rows > 1:  # the row's name above it: long run names do not fit a y title
            layout.setdefault("annotations", []).append({
                "text": f"<b>{label(v)}</b>", "xref": "paper", "yref": "paper", "x": 0,
                "y": top, "xanchor": "left", "yanchor": "bottom", "showarrow": False,
                "font": {"size": 12}, "yshift": 14,  # above the phase labels
            })
        yaxis: dict[str, Any] = {"type": "linear", "rangemode": "tozero"}
        if log_y:
            yaxis = {k: v for k, v in _LOG_LATENCY_AXIS.items() if k != "title"}
        layout[f"yaxis{suffix}"] = yaxis | {
            "domain": [max(top - height, 0.0), top],
            "anchor": f"x{suffix}",
            "title": {"text": ytitle},
        }
        layout[f"xaxis{suffix}"] = {
            "anchor": f"y{suffix}",
            "matches": None if row == 1 else "x",
            "showticklabels": row == rows,
            "title": {"text": "time (s)" if row == rows else ""},
        }
        for outcome in outcome_order:
            xy = points.get((v, outcome))
            if xy is None:
                continue
            traces.append(
                go.Scatter(
                    x=xy.x,
                    y=xy.y,
                    xaxis=f"x{suffix}",
                    yaxis=f"y{suffix}",
                    mode="markers",
                    name=outcome,
                    legendgroup=outcome,
                    showlegend=outcome not in legend_shown,
                    marker={"color": outcome_color(outcome), "size": 4, "opacity": 0.7},
                    meta=[v, outcome],
                    hovertemplate=(
                        f"{label(outcome)}: %{{y:.1f}} ms at %{{x:.2f}} s<extra>{label(v)}</extra>"
                    ),
                )
            )
            legend_shown.add(outcome)
    return _figure(traces, _with_phases(layout, events, phases))


def latency_distribution(
    events: pd.DataFrame,
    by: str = "phase",
    *,
    kind: str = "box",
    log_y: bool | None = False,
    title: str | None = None,
) -> go.Figure:
    """Latency distribution (ms) per group of `by` (default: scenario phase) and variant.

    `kind="box"`: box plots grouped by variant (traces keyed by variant, as
    `latency_groups` returns). `kind="ecdf"`: one empirical CDF per (variant, group),
    as `latency_ecdf` returns. Client view; dropped calls are left out.
    `log_y` (box only): a log latency axis, with latencies under 0.1 ms (rejections)
    drawn at 0.1 ms; None chooses it when the slowest calls are more than 20 times
    slower than the median.
    """
    if kind not in ("box", "ecdf"):
        raise ValueError(f"kind must be 'box' or 'ecdf', got {kind!r}")
    events = tr.as_events(events)
    if title is None:
        title = f"Latency by {by}"
    if kind == "ecdf":
        return _latency_ecdf(events, by, title)
    order, groups = tr.latency_groups(events, by)
    if not groups:
        return empty_figure("No calls yet", title=title)
    if log_y is None:
        values = np.concatenate([np.asarray(xy.y, dtype=float) for xy in groups.values()])
        positive = values[values > 0]
        log_y = bool(len(positive)) and float(positive.max()) > 20 * float(np.median(positive))
    if log_y:
        order, groups = tr.latency_groups(events, by, min_ms=LOG_FLOOR_MS)
    colors = variant_colors(groups)
    traces = [
        go.Box(
            x=xy.x,
            y=xy.y,
            name=label(v),
            meta=[v],
            marker={"color": colors[v], "size": 3},
            line={"width": 1.5},
            boxpoints="outliers",
            boxmean=True,
            hoverinfo="y",
        )
        for v, xy in groups.items()
    ]
    layout = merge(
        layout_dict(
            title=title,
            height=360,
            xaxis_title=by,
            yaxis_title="latency (ms)",
            legend_title="variant",
        ),
        {
            "boxmode": "group",
            "boxgroupgap": 0.25,
            "boxgap": 0.15,
            "xaxis": {"categoryorder": "array", "categoryarray": [str(g) for g in order]},
            "yaxis": _LOG_LATENCY_AXIS if log_y else {"rangemode": "tozero"},
        },
    )
    return _figure(traces, layout)


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _latency_ecdf(events: pd.DataFrame, by: str, title: str) -> go.Figure:
    curves = tr.latency_ecdf(events, by)
    if not curves:
        return empty_figure("No calls yet", title=title)
    colors = variant_colors(v for v, _ in curves)
    groups = list(dict.fromkeys(g for _, g in curves))
    traces = [
        go.Scatter(
            x=xy.x,
            y=xy.y,
            mode="lines",
            line={
                "shape": "hv",
                "color": colors[v],
                "dash": _DASHES[groups.index(g) % len(_DASHES)],
            },
            name=f"{label(v)} · {label(g)}",
            meta=[v, g],
            hovertemplate="%{x:.1f} ms: %{y:.1%}<extra>%{fullData.name}</extra>",
        )
        for (v, g), xy in curves.items()
    ]
    layout = merge(
        layout_dict(
            title=title, height=360, xaxis_title="latency (ms)", yaxis_title="fraction of calls"
        ),
        {"xaxis": {"type": "log"}, "yaxis": {"range": [0, 1.02], "tickformat": ".0%"}},
    )
    return _figure(traces, layout)


def success_rate(
    events: pd.DataFrame,
    window_s: float = 5.0,
    *,
    step_s: float | None = None,
    title: str | None = None,
    phases: bool = True,
) -> go.Figure:
    """Rolling success rate over time per variant (trailing `window_s` seconds).

    Traces keyed by variant, as `success_rate_series` returns.
    """
    events = tr.as_events(events)
    if title is None:
        title = f"Success rate ({window_s:g} s rolling window)"
    series = tr.success_rate_series(events, window_s, step_s=step_s)
    if not series:
        return empty_figure("No calls yet", title=title)
    colors = variant_colors(series)
    traces = [
        go.Scatter(
            x=xy.x,
            y=xy.y,
            mode="lines",
            name=label(v),
            meta=[v],
            line={"color": colors[v], "width": 2},
            connectgaps=False,
            hovertemplate="%{y:.1%} at %{x:.1f} s<extra>%{fullData.name}</extra>",
        )
        for v, xy in series.items()
    ]
    layout = merge(
        layout_dict(title=title, yaxis_title="calls that succeeded", legend_title="variant"),
        {
            "xaxis": {"rangemode": "tozero"},
            "yaxis": {"range": [-0.02, 1.04], "tickformat": ".0%"},
        },
    )
    return _figure(traces, _with_phases(layout, events, phases))


def backend_load(
    events: pd.DataFrame,
    bin_s: float = 1.0,
    *,
    offered: bool = True,
    title: str | None = "Load reaching the backend",
    phases: bool = True,
    dependency: str = "backend",
) -> go.Figure:
    """Requests per second reaching the backend (admitted calls), per variant.

    `dependency` names what the calls reach in the legend: "backend" for cblab's demo
    backend, "target" for someone's own MCP server behind the fault proxy.

    With `offered=True` the offered load (every call the clients made) is drawn
    dotted in the same colour: the gap between the two is what the breaker shed.
    Traces keyed (variant, "backend"|"offered"), as `backend_rate_series` returns.
    """
    events = tr.as_events(events)
    series = tr.backend_rate_series(events, bin_s, offered=offered)
    if not series:
        return empty_figure("No calls yet", title=title)
    colors = variant_colors(v for v, _ in series)
    traces = []
    for (v, which), xy in series.items():
        backend = which == "backend"
        traces.append(
            go.Scatter(
                x=xy.x,
                y=xy.y,
                mode="lines",
                name=f"{label(v)} · {dependency if backend else 'offered'}",
                legendgroup=v,
                meta=[v, which],
                line={
                    "color": colors[v],
                    "width": 2 if backend else 1.2,
                    "dash": "solid" if backend else "dot",
                    "shape": "hv",
                },
                opacity=1.0 if backend else 0.75,
                hovertemplate="%{y:.1f} req/s at %{x:.1f} s<extra>%{fullData.name}</extra>",
            )
        )
    layout = merge(
        layout_dict(
            title=title, yaxis_title=f"requests/s ({bin_s:g} s bins)", legend_title="variant"
        ),
        {"xaxis": {"rangemode": "tozero"}, "yaxis": {"rangemode": "tozero"}},
    )
    return _figure(traces, _with_phases(layout, events, phases))
