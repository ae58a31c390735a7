"""The browser tests' kernel-error check sees what JupyterLab's log console sees.

Every walk asserts "no kernel error" through `cblab.testing.collect_console_errors`.
That assertion is only worth something if it catches the errors a person would find
in the log console: a comm handler's traceback (no cell shows it). Here a FigureWidget
is given a numpy array, which plotly 7's handler of the browser's acknowledgement
(`_handler_js2py_traceDeltas`) cannot compare ("truth value of an array ... is
ambiguous": issue 19's hidden error, which the live lab avoids by sending lists);
the check must report it, and the log console's badge must count it too. The same
figure given lists must stay clean.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import nbformat
import pytest

from cblab.testing import JupyterLabServer, collect_console_errors, open_notebook, run_all_cells

pytestmark = pytest.mark.live

SOURCE = """\
import numpy as np
import plotly.graph_objects as go

fig = go.FigureWidget(go.Scatter(x=[0.0, 1.0], y=[0.0, 1.0]))
fig.add_class("watched-figure")
fig
"""
# the log console's status bar item shows a count once it holds messages
LOG_BADGE_JS = """
() => {
  const item = document.querySelector('.jp-LogConsoleStatusItem');
  return item ? item.innerText.trim() : null;
}
"""


def _walk(chromium: Any, lab_server: JupyterLabServer, served: Path, update: str) -> tuple[
        list[str], str | None]:
    name = f"kernel-error-watch-{uuid.uuid4().hex[:8]}.ipynb"
    book = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    book.cells = [nbformat.v4.new_code_cell(SOURCE), nbformat.v4.new_code_cell(update)]
    nbformat.write(book, served / name)
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = collect_console_errors(page)
    try:
        open_notebook(page, lab_server, name, timeout=120)
        run_all_cells(page)
        page.wait_for_selector(".watched-figure .js-plotly-plot, .watched-figure.js-plotly-plot",
                               timeout=120_000)
        # the update drawn: 20 points in the browser's copy of the figure
        page.wait_for_function(
            "() => { const el = document.querySelector('.watched-figure .js-plotly-plot, "
            ".watched-figure.js-plotly-plot'); return el && el.data && el.data[0].x.length === 20; }",
            timeout=60_000)
        # the browser acknowledges the drawn update; an error in the kernel's handler
        # of it comes back through IOPub within moments
        for _ in range(40):
            if errors:
                break
            page.wait_for_timeout(250)
        return list(errors), page.evaluate(LOG_BADGE_JS)
    finally:
        context.close()
        for session in lab_server.api("GET", "api/sessions") or []:
            lab_server.api("DELETE", f"api/sessions/{session['id']}")
        (served / name).unlink(missing_ok=True)


def test_a_comm_handlers_traceback_fails_the_check_as_the_log_console_shows_it(
        chromium: Any, lab_server: JupyterLabServer, served_notebooks: Path) -> None:
    errors, badge = _walk(chromium, lab_server, served_notebooks,
                          "fig.data[0].x = np.arange(20.0)")
    assert any(e.startswith("kernel: ") and "truth value of an array" in e for e in errors), errors
    assert badge and any(ch.isdigit() and ch != "0" for ch in badge), badge


def test_lists_as_the_live_lab_sends_them_leave_no_kernel_error(
        chromium: Any, lab_server: JupyterLabServer, served_notebooks: Path) -> None:
    errors, _badge = _walk(chromium, lab_server, served_notebooks,
                           "fig.data[0].x = [float(i) for i in range(20)]")
    assert not errors, errors
