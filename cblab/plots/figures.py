"""Figure builders: an event frame in, a `plotly.graph_objects.Figure` out.

Pure (no I/O), fast on a few thousand rows, and fine with an empty frame
(an empty figure with a note). Each trace's `meta` holds the key of the
arrays it draws (see `cblab.plots.traces`), so a live chart can refresh a
figure in place with `set_trace_data(fig, <same trace-array function>(window))`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from . import traces as tr
from .style import (
    NO_BREAKER_COLOR,
    OUTCOME_ORDER,
    STATE_COLORS,
    STATE_LABELS,
    add_phase_bands,
    apply_layout,
    empty_figure,
    label,
    outcome_color,
    variant_colors,
)

__all__ = [
    "backend_load",
    "latency_distribution",
    "latency_scatter",
    "state_timeline",
    "success_rate",
]


def _ordered(keys: Iterable[str], order: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    rank = {k: i for i, k in enumerate(order)}
    return sorted(keys, key=lambda k: (rank.get(k, len(order)), keys.index(k)))


def _phases(fig: go.Figure, events: pd.DataFrame, show: bool) -> None:
    if show:
        spans = tr.phase_spans(events)
        if spans:
            add_phase_bands(fig, spans)
            fig.update_layout(margin_t=max(fig.layout.margin.t or 0, 40) + 16)


def state_timeline(
    events: pd.DataFrame,
    *,
    t_end: float | None = None,
    title: str | None = "Breaker state",
    phases: bool = True,
) -> go.Figure:
    """A band per breaker (and variant) coloured by state over time.

    Traces: one horizontal-bar trace per state (closed, half_open, open) plus one for
    variants without a breaker; `meta` is the state (keys of `state_bands(...).bars`).
    """
    events = tr.as_events(events)
    bands = tr.state_bands(events, t_end=t_end)
    if not bands.rows:
        return empty_figure("No breaker state in these events", title=title, height=200)
    fig = go.Figure()
    for state, bars in bands.bars.items():
        is_state = state in STATE_COLORS
        fig.add_trace(
            go.Bar(
                y=[label(r) for r in bars.y],
                base=bars.base,
                x=bars.x,
                customdata=[[end, label(reason)] for end, reason in bars.customdata],
                orientation="h",
                name=STATE_LABELS.get(state, "no breaker"),
                marker={"color": STATE_COLORS.get(state, NO_BREAKER_COLOR), "line": {"width": 0}},
                width=0.62,
                meta=[state],
                showlegend=is_state,
                hovertemplate=(
                    f"<b>{STATE_LABELS.get(state, 'no breaker')}</b> %{{base:.2f}}–%{{customdata[0]:.2f}} s"
                    "<br>%{customdata[1]}<extra>%{y}</extra>"
                ),
            )
        )
    height = 110 + 42 * len(bands.rows)
    apply_layout(fig, title=title, height=height, legend_title=None)
    fig.update_layout(barmode="overlay", bargap=0.3)
    fig.update_yaxes(
        categoryorder="array",
        categoryarray=[label(r) for r in reversed(bands.rows)],
        showgrid=False,
    )
    fig.update_xaxes(rangemode="tozero")
    _phases(fig, events, phases)
    return fig


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
    floor = 0.1 if log_y else None
    points = tr.latency_points(events, outcomes=outcomes, min_ms=floor)
    if not points:
        return empty_figure("No calls yet", title=title)
    variants = list(dict.fromkeys(v for v, _ in points))
    outcome_order = _ordered((o for _, o in points), OUTCOME_ORDER)
    rows = len(variants)
    fig = make_subplots(
        rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08 if rows > 1 else 0.0
    )
    legend_shown: set[str] = set()
    for row, v in enumerate(variants, start=1):
        for outcome in outcome_order:
            xy = points.get((v, outcome))
            if xy is None:
                continue
            fig.add_trace(
                go.Scatter(
                    x=xy.x,
                    y=xy.y,
                    mode="markers",
                    name=outcome,
                    legendgroup=outcome,
                    showlegend=outcome not in legend_shown,
                    marker={"color": outcome_color(outcome), "size": 4, "opacity": 0.7},
                    meta=[v, outcome],
                    hovertemplate=f"{label(outcome)}: %{{y:.1f}} ms at %{{x:.2f}} s<extra>{label(v)}</extra>",
                ),
                row=row,
                col=1,
            )
            legend_shown.add(outcome)
    apply_layout(
        fig, title=title, height=120 + 220 * rows, xaxis_title=None, legend_title="outcome"
    )
    fig.update_xaxes(title_text="time (s)", row=rows, col=1)
    fig.update_yaxes(type="log" if log_y else "linear", rangemode="tozero")
    for row, v in enumerate(variants, start=1):
        name = f"<b>{label(v)}</b><br>latency (ms)" if rows > 1 else "latency (ms)"
        fig.update_yaxes(title_text=name, row=row, col=1)
    _phases(fig, events, phases)
    return fig


def latency_distribution(
    events: pd.DataFrame,
    by: str = "phase",
    *,
    kind: str = "box",
    title: str | None = None,
) -> go.Figure:
    """Latency distribution (ms) per group of `by` (default: scenario phase) and variant.

    `kind="box"`: box plots grouped by variant (traces keyed by variant, as
    `latency_groups` returns). `kind="ecdf"`: one empirical CDF per (variant, group),
    as `latency_ecdf` returns. Client view; dropped calls are left out.
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
    colors = variant_colors(groups)
    fig = go.Figure()
    for v, xy in groups.items():
        fig.add_trace(
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
        )
    apply_layout(
        fig,
        title=title,
        height=360,
        xaxis_title=by,
        yaxis_title="latency (ms)",
        legend_title="variant",
    )
    fig.update_layout(boxmode="group", boxgroupgap=0.25, boxgap=0.15)
    fig.update_xaxes(categoryorder="array", categoryarray=[str(g) for g in order])
    fig.update_yaxes(rangemode="tozero")
    return fig


_DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")


def _latency_ecdf(events: pd.DataFrame, by: str, title: str) -> go.Figure:
    curves = tr.latency_ecdf(events, by)
    if not curves:
        return empty_figure("No calls yet", title=title)
    colors = variant_colors(v for v, _ in curves)
    groups = list(dict.fromkeys(g for _, g in curves))
    fig = go.Figure()
    for (v, g), xy in curves.items():
        fig.add_trace(
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
        )
    apply_layout(
        fig, title=title, height=360, xaxis_title="latency (ms)", yaxis_title="fraction of calls"
    )
    fig.update_xaxes(type="log")
    fig.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return fig


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
    fig = go.Figure()
    for v, xy in series.items():
        fig.add_trace(
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
        )
    apply_layout(fig, title=title, yaxis_title="calls that succeeded", legend_title="variant")
    fig.update_yaxes(range=[-0.02, 1.04], tickformat=".0%")
    fig.update_xaxes(rangemode="tozero")
    _phases(fig, events, phases)
    return fig


def backend_load(
    events: pd.DataFrame,
    bin_s: float = 1.0,
    *,
    offered: bool = True,
    title: str | None = "Load reaching the backend",
    phases: bool = True,
) -> go.Figure:
    """Requests per second reaching the backend (admitted calls), per variant.

    With `offered=True` the offered load (every call the clients made) is drawn
    dotted in the same colour: the gap between the two is what the breaker shed.
    Traces keyed (variant, "backend"|"offered"), as `backend_rate_series` returns.
    """
    events = tr.as_events(events)
    series = tr.backend_rate_series(events, bin_s, offered=offered)
    if not series:
        return empty_figure("No calls yet", title=title)
    colors = variant_colors(v for v, _ in series)
    fig = go.Figure()
    for (v, which), xy in series.items():
        backend = which == "backend"
        fig.add_trace(
            go.Scatter(
                x=xy.x,
                y=xy.y,
                mode="lines",
                name=f"{label(v)} · {'backend' if backend else 'offered'}",
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
    apply_layout(
        fig, title=title, yaxis_title=f"requests/s ({bin_s:g} s bins)", legend_title="variant"
    )
    fig.update_yaxes(rangemode="tozero")
    fig.update_xaxes(rangemode="tozero")
    _phases(fig, events, phases)
    return fig
