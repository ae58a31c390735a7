"""plotly's widget view, acknowledging a drawn edit in one small message.

After every edit it draws, plotly's FigureWidget view (plotly 6/7,
``package_data/widgetbundle.js``) deep-merges every trace's full data, arrays
included, and the full layout, diffs them against the model and sends two
messages back to the kernel: the trace "deltas" and a layout delta. In the live
lab that was 99 kB/s from the browser, echoed back by ipywidgets, and each
message is a shell request, so the kernel went busy and idle twice per redraw and
JupyterLab repainted its status, toolbar and favicon each time (about 15 % of the
page's main thread, profiled in Chromium). Nothing in cblab reads those defaults,
and plotly 7's layout delta goes to a trait name the kernel does not have
(``_js2py_widget_layoutDelta`` against ``_js2py_layoutDelta``), so it was never
read at all.

`lean_widget_bundle` returns plotly's own bundle with those two methods replaced:
the trace acknowledgement keeps its shape (one delta per trace of the model,
carrying only its ``uid``, which the kernel's handler looks up) and its edit id,
which is what `cblab.lab.pacing.DrawPacer` reads; the layout delta is not sent.
Anything unexpected in the bundle (another plotly) returns None: the caller keeps
plotly's bundle unchanged.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

__all__ = ["lean_bundle", "lean_widget_bundle"]

_TRACE_ACK = (
    '_sendTraceDeltas(id){var data=this.model.get("_widget_data")||[];'
    'this.model.set("_js2py_traceDeltas",{trace_deltas:data.map(function(t){return{uid:t.uid}}),'
    "trace_edit_id:id}),this.touch()}"
)
_LAYOUT_ACK = "_sendLayoutDelta(id){}"
# A method of plotly's view class, from its name to the end of its body (each ends
# with its one ``this.touch()``; minified names differ between plotly builds).
_METHOD = r"{name}\(\w+\)\{{[^{{}}]*?(?:\{{[^{{}}]*\}}[^{{}}]*?)*this\.touch\(\)\}}"


@functools.cache
def lean_widget_bundle() -> str | None:
    """The installed plotly's widget bundle (the module its FigureWidget declares) with
    lean acknowledgements, or None if it is not the bundle this was written against."""
    import plotly.graph_objects as go

    try:
        return lean_bundle(str(go.FigureWidget._esm))  # anywidget reads the file once
    except OSError:
        return None


def _constant(body: str) -> Callable[[re.Match[str]], str]:
    return lambda _match: body


def lean_bundle(text: str) -> str | None:
    """`text` (a plotly widget bundle) with both methods replaced, or None unless each
    is found exactly once."""
    for name, body in (("_sendTraceDeltas", _TRACE_ACK), ("_sendLayoutDelta", _LAYOUT_ACK)):
        # a function, not a template: the JavaScript's backslashes stay as they are
        text, count = re.subn(_METHOD.format(name=name), _constant(body), text)
        if count != 1:
            return None
    return text
