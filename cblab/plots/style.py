"""One palette and one look for every cblab figure (notebooks, live lab, reports).

Colours carry meaning and never change between figures: a state is always the
same colour, an outcome always the same colour, and the two classic variants
("protected", "unprotected") always the same colour.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from typing import Any

import plotly.graph_objects as go

__all__ = [
    "FONT_FAMILY",
    "NO_BREAKER_COLOR",
    "OUTCOME_COLORS",
    "OUTCOME_ORDER",
    "PHASE_FILL",
    "STATE_COLORS",
    "STATE_LABELS",
    "STATE_ORDER",
    "VARIANT_COLORS",
    "add_phase_bands",
    "apply_layout",
    "empty_figure",
    "label",
    "outcome_color",
    "variant_colors",
]

# Breaker states: closed green, half-open amber, open red.
STATE_ORDER: tuple[str, ...] = ("closed", "half_open", "open")
STATE_COLORS: dict[str, str] = {
    "closed": "#2f9e5b",
    "half_open": "#f0a202",
    "open": "#d64545",
}
STATE_LABELS: dict[str, str] = {"closed": "closed", "half_open": "half-open", "open": "open"}
NO_BREAKER_COLOR = "#c9ced6"

# Call outcomes (cblab.Outcome values plus the load generator's timeout/dropped).
OUTCOME_ORDER: tuple[str, ...] = (
    "success",
    "slow",
    "late",
    "failure",
    "timeout",
    "rejected",
    "dropped",
    "excluded",
    "cancelled",
)
OUTCOME_COLORS: dict[str, str] = {
    "success": "#2f9e5b",  # green: it worked
    "slow": "#a3b81d",  # olive: worked, but slower than the slow-call threshold
    "late": "#3a8fb7",  # teal: finished after the breaker moved on
    "failure": "#d64545",  # red: the dependency failed
    "timeout": "#8b1e3f",  # dark red: the caller gave up
    "rejected": "#7d8ba1",  # slate: failed fast, the breaker refused it
    "dropped": "#b7bec8",  # light grey: never sent (in-flight cap)
    "excluded": "#8e6bbf",  # purple: an excluded exception
    "cancelled": "#a0785a",  # brown: cancelled
}
_FALLBACK_OUTCOME_COLOR = "#555555"

# Variants: the classic pair is fixed; other labels take the palette in order.
VARIANT_COLORS: dict[str, str] = {"protected": "#1f6fb2", "unprotected": "#e07b39"}
_VARIANT_PALETTE: tuple[str, ...] = (
    "#1f6fb2",
    "#e07b39",
    "#6a4c93",
    "#1b998b",
    "#c2185b",
    "#8c6d1f",
    "#4d7c0f",
    "#374151",
)

PHASE_FILL = "rgba(120, 130, 150, 0.08)"
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def outcome_color(outcome: str) -> str:
    return OUTCOME_COLORS.get(outcome, _FALLBACK_OUTCOME_COLOR)


def variant_colors(variants: Iterable[str]) -> dict[str, str]:
    """A colour per variant: the fixed ones first, then the palette in order of appearance."""
    colors: dict[str, str] = {}
    used = set()
    pending = []
    for variant in dict.fromkeys(variants):
        if variant in VARIANT_COLORS:
            colors[variant] = VARIANT_COLORS[variant]
            used.add(VARIANT_COLORS[variant])
        else:
            pending.append(variant)
    palette = [c for c in _VARIANT_PALETTE if c not in used] or list(_VARIANT_PALETTE)
    for i, variant in enumerate(pending):
        colors[variant] = palette[i % len(palette)]
    return colors


def label(text: Any) -> str:
    """Text from run data made safe for plotly labels (plotly renders a subset of HTML)."""
    return html.escape(str(text), quote=False)


def apply_layout(
    fig: go.Figure,
    *,
    title: str | None = None,
    height: int = 340,
    xaxis_title: str | None = "time (s)",
    yaxis_title: str | None = None,
    legend_title: str | None = None,
) -> go.Figure:
    """The common layout: white template, compact margins, legend on the right."""
    fig.update_layout(
        template="plotly_white",
        title={"text": title, "x": 0.012, "xref": "container", "xanchor": "left", "font": {"size": 15}}
        if title
        else None,
        height=height,
        margin={"l": 64, "r": 24, "t": 56 if title else 28, "b": 48},
        font={"family": FONT_FAMILY, "size": 12, "color": "#1f2933"},
        legend={"title": {"text": legend_title} if legend_title else None, "tracegroupgap": 4},
        hoverlabel={"font": {"family": FONT_FAMILY}},
    )
    if xaxis_title is not None:
        fig.update_layout(xaxis_title_text=xaxis_title)
    if yaxis_title is not None:
        fig.update_layout(yaxis_title_text=yaxis_title)
    return fig


def empty_figure(
    note: str = "No data yet", *, title: str | None = None, height: int = 340
) -> go.Figure:
    """A blank figure carrying a centred note: what a builder returns for an empty frame."""
    fig = go.Figure()
    apply_layout(fig, title=title, height=height, xaxis_title=None)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.add_annotation(
        text=label(note),
        x=0.5,
        y=0.5,
        xref="paper",
        yref="paper",
        showarrow=False,
        font={"size": 14, "color": "#7b8794"},
    )
    return fig


def add_phase_bands(
    fig: go.Figure, spans: Sequence[tuple[str, float, float]], *, show_labels: bool = True
) -> go.Figure:
    """Shade every other scenario phase and name each one above the plot area."""
    for i, (name, start, end) in enumerate(spans):
        if end <= start:
            continue
        if i % 2 == 0:
            fig.add_shape(
                type="rect",
                xref="x",
                yref="paper",
                x0=start,
                x1=end,
                y0=0,
                y1=1,
                fillcolor=PHASE_FILL,
                line={"width": 0},
                layer="below",
            )
        if i > 0:
            fig.add_shape(
                type="line",
                xref="x",
                yref="paper",
                x0=start,
                x1=start,
                y0=0,
                y1=1,
                line={"width": 1, "dash": "dot", "color": "rgba(90, 100, 120, 0.45)"},
                layer="below",
            )
        if show_labels:
            fig.add_annotation(
                x=(start + end) / 2,
                y=1.0,
                xref="x",
                yref="paper",
                yanchor="bottom",
                text=label(name),
                showarrow=False,
                font={"size": 10, "color": "#52606d"},
            )
    return fig
