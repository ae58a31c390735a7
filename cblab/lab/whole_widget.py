"""A plotly FigureWidget whose widget model opens with its figure in it.

`plotly.graph_objects.FigureWidget` opens its comm (the browser creates the model)
at the start of its constructor, with an empty figure, and sends the traces, the
layout and any CSS class as updates right after. In the browser, anywidget holds a
model's updates until the widget's module (plotly's, 5 MB) has loaded, and under
load the view's first draw ran before they were applied: a chart drawn from the
empty defaults (no traces, 360 px high, no class), which no later update fills
(issue 19: the browser walks waiting minutes for the live chart). Opened whole, the
model's first state is the figure: whatever the order, the view draws it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import plotly.graph_objects as go
from plotly.serializers import custom_serializers
from traitlets import Dict

from .lean_acks import lean_widget_bundle

__all__ = ["WholeFigureWidget"]


class WholeFigureWidget(go.FigureWidget):  # type: ignore[misc]
    """``WholeFigureWidget(figure, classes=("my-chart",))``: a FigureWidget that opens
    its comm only once its figure and CSS classes are set, and whose view acknowledges
    a drawn edit in one small message (`cblab.lab.lean_acks`)."""

    # The kernel need not echo the browser's acknowledgement back to it.
    _js2py_traceDeltas = Dict(allow_none=True).tag(sync=True, echo_update=False,
                                                   **custom_serializers)

    def __init__(self, figure: Any = None, *, classes: Iterable[str] = ()) -> None:
        # read (5 MB) and patched on the first widget, not when cblab.lab is imported;
        # anywidget's constructor takes the module from this attribute
        self._esm = lean_widget_bundle() or str(go.FigureWidget._esm)
        self._hold_open = True
        super().__init__(figure)
        for name in classes:
            self.add_class(name)
        self._hold_open = False
        self.open()

    def open(self) -> None:
        if not getattr(self, "_hold_open", False):
            super().open()
