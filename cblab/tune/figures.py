"""The tuning loop's figures, one definition each, drawn from the tables of
`cblab.tune.loop` (the report and notebook 09's view both use these):

- `heatmap_figure`: the objective over the first two settings, a panel for the
  worst variant (what the pick maximises) and one per variant, the pick marked;
- `fit_figure`: per phase, the observed and the fitted latency quantiles;
- `pick_figure`: the pick against the current config per variant, with 95 % CIs.

Trace order is fixed (a heatmap then the pick's marker, per panel), so a view can
redraw a figure in place by copying the new figure's trace data.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cblab.plots.style import apply_layout, variant_colors

if TYPE_CHECKING:
    from .loop import TuneResult

__all__ = ["fit_figure", "heatmap_figure", "panel_names", "pick_figure"]

WORST = "worst variant"


def panel_names(result: TuneResult) -> list[str]:
    """The heatmap's panels: the worst variant, then each variant."""
    return [WORST, *result.variant_names]


def _label(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def heatmap_figure(result: TuneResult) -> go.Figure:
    """The objective's mean over seeds across the first two settings, per panel
    (`cblab.tune.loop.objective_grid`); blank cells broke max_wasted or were not tried."""
    names = panel_names(result)
    cols = min(len(names), 3)
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, horizontal_spacing=0.08,
                        vertical_spacing=0.16 if rows > 1 else 0.1)
    objective = result.objective
    label = objective.label
    fmt = ".2%" if objective.higher_is_better else ".1f"
    pick = result.pick.setting
    settings = result.settings
    for i, name in enumerate(names):
        grid = result.objective_grid(None if name == WORST else name)
        x = [_label(v) for v in grid.columns]
        y = [_label(v) for v in grid.index]
        row, col = divmod(i, cols)
        fig.add_trace(go.Heatmap(
            z=grid.to_numpy().tolist(), x=x, y=y, coloraxis="coloraxis", name=name,
            hovertemplate=(f"{settings[1] if len(settings) > 1 else ''} %{{x}}<br>{settings[0]}"
                           f" %{{y}}<br>{label} %{{z:{fmt}}}<extra>{name}</extra>")),
            row=row + 1, col=col + 1)
        fig.add_trace(go.Scatter(
            x=[_label(pick[settings[1]]) if len(settings) > 1 else ""],
            y=[_label(pick[settings[0]])], mode="markers", showlegend=i == 0, name="the pick",
            legendgroup="pick", marker={"symbol": "x", "size": 14, "color": "white",
                                        "line": {"width": 2, "color": "black"}},
            hoverinfo="skip"), row=row + 1, col=col + 1)
        fig.update_xaxes(type="category", title_text=settings[1] if len(settings) > 1 else "",
                         row=row + 1, col=col + 1)
        fig.update_yaxes(type="category", title_text=settings[0] if col == 0 else "",
                         row=row + 1, col=col + 1)
    scale = "Viridis" if objective.higher_is_better else "Viridis_r"
    return apply_layout(
        fig, height=300 * rows + 60, xaxis_title=None,
        coloraxis={"colorscale": scale, "colorbar": {"title": {"text": label},
                                                     "tickformat": fmt}},
        legend={"orientation": "h", "y": -0.12})


def fit_figure(result: TuneResult) -> go.Figure:
    """Observed (bars) and fitted (markers) latency quantiles per phase
    (`cblab.tune.loop.fit_quality_table`)."""
    from .loop import fit_quality_table

    table = fit_quality_table(result)
    x = [table["phase"].tolist(), table["quantile"].tolist()]
    fig = go.Figure([
        go.Bar(x=x, y=table["observed_ms"].tolist(), name="observed", marker_color="#8da0cb",
               hovertemplate="%{x}: observed %{y:.1f} ms<extra></extra>"),
        go.Scatter(x=x, y=table["fitted_ms"].tolist(), name="fitted", mode="markers",
                   marker={"symbol": "diamond", "size": 11, "color": "#e07b39"},
                   hovertemplate="%{x}: fitted %{y:.1f} ms<extra></extra>"),
    ])
    return apply_layout(fig, height=340, xaxis_title="phase, latency quantile",
                        yaxis_title="latency (ms)")


def pick_figure(result: TuneResult) -> go.Figure:
    """The objective per variant for the pick and the current config, mean and 95 % CI
    over seeds (`cblab.tune.loop.pick_table`)."""
    table = result.pick_table()
    colors = variant_colors(["pick", "current"])
    fig = go.Figure()
    for who, name in (("pick", f"pick {result.pick.setting}"),
                      ("current", f"current {result.current.setting}")):
        fig.add_trace(go.Scatter(
            x=table.index.tolist(), y=table[who].tolist(), mode="markers", name=name,
            marker={"size": 11, "color": colors[who]},
            error_y={"type": "data", "symmetric": False,
                     "array": (table[f"{who}_high"] - table[who]).tolist(),
                     "arrayminus": (table[who] - table[f"{who}_low"]).tolist()}))
    tickformat = ".1%" if result.objective.higher_is_better else ""
    return apply_layout(fig, height=340, xaxis_title="variant",
                        yaxis_title=result.objective.label, yaxis_tickformat=tickformat,
                        scattermode="group")
