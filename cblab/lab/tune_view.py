"""Notebook 09's view of a tuning result: sliders for the objective's weights that
re-pick at once, from the runs already simulated.

    from cblab.tune import tune
    from cblab.lab.tune_view import TuneView
    result = tune(rows, meta, ...)
    view = TuneView(result)          # display it: sliders, heatmaps, the pick table
    view.set(cost_wasted=10)         # what a slider does, from code

Moving a slider calls ``result.repick(**weights)`` (`cblab.tune.loop.repick`: a
re-scoring of the simulated table, no new simulation), then redraws the heatmaps
(``heatmap_figure()``, trace by trace in place) and the pick table
(``pick_table()``). The result is duck-typed: this layer sits below `cblab.tune`
and imports nothing from it; every figure and number comes from the result.
"""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["WEIGHTS", "TuneView", "pick_table_html"]

#: The sliders: objective field -> (label, max, step).
WEIGHTS: dict[str, tuple[str, float, float]] = {
    "cost_failed": ("failed call", 20.0, 0.5),
    "cost_wasted": ("wasted call", 20.0, 0.5),
    "cost_refused": ("refused call", 5.0, 0.1),
}


def _fmt(value: float, share: bool) -> str:
    if math.isnan(value):
        return "—"
    return f"{value:.2%}" if share else f"{value:,.1f}"


def pick_table_html(result: Any) -> str:
    """The result's `pick_table()` as HTML: mean [95 % CI] for the pick and the current
    config per variant, and the mean wasted calls."""
    table = result.pick_table()
    share = bool(result.objective.higher_is_better)
    head = ("<tr><th>variant</th><th>pick</th><th>current</th><th>wasted (pick)</th>"
            "<th>wasted (current)</th></tr>")
    rows = []
    for variant, row in table.iterrows():
        cells = [f"<th>{html.escape(str(variant))}</th>"]
        for who in ("pick", "current"):
            cells.append(f"<td>{_fmt(row[who], share)} [{_fmt(row[f'{who}_low'], share)}, "
                         f"{_fmt(row[f'{who}_high'], share)}]</td>")
        cells += [f"<td>{row['pick_wasted']:,.1f}</td>", f"<td>{row['current_wasted']:,.1f}</td>"]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<p class="tune-pick-setting"><b>pick</b> <code>{html.escape(str(result.pick.setting))}'
            f"</code> vs <b>current</b> <code>{html.escape(str(result.current.setting))}</code>"
            f" · {html.escape(result.objective.label)}, mean [95 % CI] over seeds</p>"
            f'<table class="tune-pick"><thead>{head}</thead><tbody>{"".join(rows)}</tbody>'
            "</table>")


class TuneView:
    """Weight sliders, the heatmaps and the pick table of a `TuneResult`, kept in step."""

    def __init__(self, result: Any) -> None:
        import ipywidgets as W

        from .whole_widget import WholeFigureWidget

        self.result = result
        objective = result.objective
        self.sliders: dict[str, Any] = {
            name: W.FloatSlider(value=float(getattr(objective, name)), min=0.0, max=top,
                                step=step, description=label, continuous_update=False,
                                style={"description_width": "initial"})
            for name, (label, top, step) in WEIGHTS.items()}
        top = float(math.ceil(max(p.worst_wasted for p in result.points)))
        limit = objective.max_wasted if objective.max_wasted is not None else top
        self.sliders["max_wasted"] = W.FloatSlider(
            value=float(min(limit, top)), min=0.0, max=top,
            step=max(1.0, float(math.ceil(top / 100))), description="max wasted calls",
            tooltip="only settings whose worst variant sends at most this many calls into the "
                    "failing server; at the top: no limit",
            continuous_update=False, style={"description_width": "initial"})
        self.figure = WholeFigureWidget(result.heatmap_figure())  # opened whole: issue 19
        # HTML widgets, not Output widgets: headless runners (nbclient) mishandle those
        self.table = W.HTML(pick_table_html(result))
        self.message = W.HTML("")
        for slider in self.sliders.values():
            slider.observe(self._moved, names="value")
        self.box = W.VBox([
            W.HTML("<b>Cost of a</b>"),
            W.HBox([self.sliders[name] for name in WEIGHTS]),
            self.sliders["max_wasted"], self.message, self.figure, self.table])

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.box._repr_mimebundle_(**kwargs)

    def _moved(self, _: Any = None) -> None:
        weights = {name: slider.value for name, slider in self.sliders.items()}
        top = self.sliders["max_wasted"]
        if top.value >= top.max:  # at its top the slider means no limit
            weights["max_wasted"] = None
        self.set(**weights)

    def set(self, **weights: float | None) -> Any:
        """Re-pick with these objective fields (cost_failed, cost_wasted, cost_refused,
        max_wasted) and redraw; the new result (or the old one, with the reason shown,
        when no setting meets max_wasted)."""
        try:
            new = self.result.repick(kind="cost", **weights)
        except ValueError as exc:  # TuneError: no setting meets max_wasted
            self.message.value = f'<span class="tune-warning">{html.escape(str(exc))}</span>'
            return self.result
        self.result = new
        self.message.value = ""
        fresh = new.heatmap_figure()
        with self.figure.batch_update():
            for trace, drawn in zip(self.figure.data, fresh.data, strict=True):
                trace.update(x=drawn.x, y=drawn.y, **({"z": drawn.z} if drawn.type == "heatmap"
                                                       else {}))
            self.figure.layout.coloraxis = fresh.layout.coloraxis
        self.table.value = pick_table_html(new)
        return new
