"""The live chart's view acknowledges a drawn edit in one small message
(cblab.lab.lean_acks); the browser walk of 03 checks the messages on the wire."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import plotly.graph_objects as go
import pytest

from cblab.lab.dashboard import live_figure
from cblab.lab.lean_acks import lean_bundle, lean_widget_bundle
from cblab.lab.whole_widget import WholeFigureWidget

# The shape of plotly 7's view methods, minified (names as in its bundle).
VIEW = (
    'class V{do_update(){Md.update(this.el),this._sendTraceDeltas(1);this._sendLayoutDelta(1)}'
    '_sendLayoutDelta(ne){var ge=Ox(this.getFullLayout(),this.model.get("_widget_layout")),'
    'je={layout_delta:ge,layout_edit_id:ne};this.model.set("_js2py_widget_layoutDelta",je),'
    'this.touch()}_sendTraceDeltas(ne){for(var ge=this.model.get("_widget_data"),'
    'je=qs.range(ge.length),mt=new Array(je.length),Lt=this.getFullData(),rr=0;rr<je.length;'
    'rr++){var Ar=je[rr];mt[rr]=Ox(Lt[Ar],ge[Ar])}var Tr={trace_deltas:mt,trace_edit_id:ne};'
    'this.model.set("_js2py_traceDeltas",Tr),this.touch()}touch(){this.model.save_changes()}}'
)


def test_both_methods_are_replaced_and_nothing_else() -> None:
    lean = lean_bundle(VIEW)
    assert lean is not None
    assert "getFullData" not in lean and "getFullLayout" not in lean
    assert "_sendLayoutDelta(id){}" in lean
    assert lean.startswith("class V{do_update(){Md.update(this.el),this._sendTraceDeltas(1);")
    assert lean.endswith("touch(){this.model.save_changes()}}")
    assert lean.count('"_js2py_traceDeltas"') == 1


@pytest.mark.parametrize("changed", [
    VIEW.replace("_sendLayoutDelta(ne)", "_sendLayout(ne)"),  # renamed: not found
    VIEW + VIEW,  # twice: which one?
])
def test_a_bundle_it_does_not_know_is_left_alone(changed: str) -> None:
    assert lean_bundle(changed) is None


def test_the_installed_plotly_bundle_is_made_lean_and_still_parses(tmp_path: Path) -> None:
    lean = lean_widget_bundle()
    assert lean is not None, "plotly's widget bundle changed: see cblab/lab/lean_acks.py"
    widget = WholeFigureWidget(live_figure(["protected"], "github"))
    assert widget.get_state("_esm")["_esm"] == lean  # the module the browser gets
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (make test installs it for the reference servers)")
    module = tmp_path / "bundle.mjs"
    module.write_text(lean, encoding="utf-8")
    subprocess.run([node, "--check", str(module)], check=True, timeout=120)


def test_the_kernel_takes_a_lean_acknowledgement_and_does_not_echo_it() -> None:
    widget = WholeFigureWidget(live_figure(["protected"], "github"))
    with widget.batch_update():
        widget.data[5].x = [1.0, 2.0]
    assert widget._trace_edit_in_process
    # what the lean view sends: one delta per trace of the model, its uid only
    widget._js2py_traceDeltas = {
        "trace_deltas": [{"uid": trace.uid} for trace in widget.data],
        "trace_edit_id": widget._last_trace_edit_id,
    }
    assert not widget._trace_edit_in_process  # plotly's handler took it
    assert widget._js2py_traceDeltas is None
    assert list(widget.data[5].x) == [1.0, 2.0]
    assert widget.trait_metadata("_js2py_traceDeltas", "echo_update") is False
    assert go.FigureWidget().trait_metadata("_js2py_traceDeltas", "echo_update") is None
