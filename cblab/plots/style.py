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
    "TEMPLATE",
    "add_phase_bands",
    "apply_layout",
    "empty_figure",
    "label",
    "layout_dict",
    "merge",
    "new_figure",
    "outcome_color",
    "phase_decorations",
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


_AXIS = {
    "gridcolor": "#ebf0f8",
    "linecolor": "#d9e2ec",
    "zerolinecolor": "#e4e9f0",
    "zerolinewidth": 1,
    "ticks": "",
    "automargin": True,
    "title": {"standoff": 12},
}
# A small template (plotly_white's look without its per-trace-type defaults):
# assigning it costs a few ms, where a full named template costs ~20-80 ms a figure.
TEMPLATE: dict[str, Any] = {
    "layout": {
        "autotypenumbers": "strict",
        "colorway": list(_VARIANT_PALETTE),
        "font": {"family": FONT_FAMILY, "size": 12, "color": "#1f2933"},
        "hovermode": "closest",
        "hoverlabel": {"align": "left", "font": {"family": FONT_FAMILY}},
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "xaxis": _AXIS,
        "yaxis": _AXIS,
    }
}


def new_figure(data: Sequence[Any] | None = None) -> go.Figure:
    """A `go.Figure` on cblab's template (much cheaper than plotly's default template)."""
    return go.Figure(data=list(data or ()), layout={"template": TEMPLATE})


def layout_dict(
    *,
    title: str | None = None,
    height: int = 340,
    xaxis_title: str | None = "time (s)",
    yaxis_title: str | None = None,
    legend_title: str | None = None,
) -> dict[str, Any]:
    """The common layout as a dict, to pass to `update_layout` once with the rest."""
    layout: dict[str, Any] = {
        "template": TEMPLATE,
        "height": height,
        "margin": {"l": 64, "r": 24, "t": 56 if title else 28, "b": 48},
        "legend": {"title": {"text": legend_title or ""}, "tracegroupgap": 4},
    }
    if title:
        layout["title"] = {
            "text": title,
            "x": 0.012,
            "xref": "container",
            "xanchor": "left",
            "font": {"size": 15},
        }
    if xaxis_title is not None:
        layout["xaxis"] = {"title": {"text": xaxis_title}}
    if yaxis_title is not None:
        layout["yaxis"] = {"title": {"text": yaxis_title}}
    return layout


def merge(base: dict[str, Any], *updates: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `updates`, nested dicts merged key by key (new dicts, no mutation)."""
    out = dict(base)
    for update in updates:
        for key, value in update.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = merge(out[key], value)
            else:
                out[key] = value
    return out


def apply_layout(
    fig: go.Figure,
    *,
    title: str | None = None,
    height: int = 340,
    xaxis_title: str | None = "time (s)",
    yaxis_title: str | None = None,
    legend_title: str | None = None,
    **layout: Any,
) -> go.Figure:
    """The common look: cblab's template, compact margins, legend on the right.

    Extra keyword arguments are more layout properties, applied in the same update.
    """
    base = layout_dict(
        title=title,
        height=height,
        xaxis_title=xaxis_title,
        yaxis_title=yaxis_title,
        legend_title=legend_title,
    )
    fig.update_layout(merge(base, layout))
    return fig


def empty_figure(
    note: str = "No data yet", *, title: str | None = None, height: int = 340
) -> go.Figure:
    """A blank figure carrying a centred note: what a builder returns for an empty frame."""
    fig = go.Figure(
        layout=merge(
            layout_dict(title=title, height=height, xaxis_title=None),
            {
                "xaxis": {"visible": False},
                "yaxis": {"visible": False},
                "annotations": [
                    {
                        "text": label(note),
                        "x": 0.5,
                        "y": 0.5,
                        "xref": "paper",
                        "yref": "paper",
                        "showarrow": False,
                        "font": {"size": 14, "color": "#7b8794"},
                    }
                ],
            },
        )
    )
    return fig


def phase_decorations(
    spans: Sequence[tuple[str, float, float]], *, show_labels: bool = True
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Layout shapes and annotations that mark scenario phases: every other phase
    shaded, a dotted line at each boundary, each phase named above the plot area."""
    shapes: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for i, (name, start, end) in enumerate(spans):
        if end <= start:
            continue
        if i % 2 == 0:
            shapes.append(
                {
                    "type": "rect",
                    "xref": "x",
                    "yref": "paper",
                    "x0": start,
                    "x1": end,
                    "y0": 0,
                    "y1": 1,
                    "fillcolor": PHASE_FILL,
                    "line": {"width": 0},
                    "layer": "below",
                }
            )
        if i > 0:
            shapes.append(
                {
                    "type": "line",
                    "xref": "x",
                    "yref": "paper",
                    "x0": start,
                    "x1": start,
                    "y0": 0,
                    "y1": 1,
                    "line": {"width": 1, "dash": "dot", "color": "rgba(90, 100, 120, 0.45)"},
                    "layer": "below",
                }
            )
        if show_labels:
            annotations.append(
                {
                    "x": (start + end) / 2,
                    "y": 1.0,
                    "xref": "x",
                    "yref": "paper",
                    "yanchor": "bottom",
                    "text": label(name),
                    "showarrow": False,
                    "font": {"size": 10, "color": "#52606d"},
                }
            )
    return shapes, annotations


def add_phase_bands(
    fig: go.Figure, spans: Sequence[tuple[str, float, float]], *, show_labels: bool = True
) -> go.Figure:
    """Mark scenario phases on `fig` (see `phase_decorations`), in one layout update."""
    shapes, annotations = phase_decorations(spans, show_labels=show_labels)
    if shapes or annotations:
        fig.update_layout(
            shapes=[*fig.layout.shapes, *shapes],
            annotations=[*fig.layout.annotations, *annotations],
        )
    return fig
