"""The browser tests' kernel-error check sees what JupyterLab's log console sees.

Every walk asserts "no kernel error" through `cblab.testing.collect_console_errors`.
That assertion is only worth something if it catches the errors a person would find
in the log console and in no cell: a widget comm handler's traceback, such as issue
19's plotly `_handler_js2py_traceDeltas ... truth value of an array is ambiguous`,
raised while the kernel handles a message from the browser. Here a slider's observer
fails on purpose when the slider is moved in the page (the same path: a comm message
from the browser, an exception in its handler); the check must report it, and the
log console's status-bar badge must count it too.
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
import ipywidgets as W

slider = W.IntSlider(value=0, description="watched")
slider.add_class("watched-slider")

def fail_on_purpose(change):
    raise ValueError(f"a handler that fails on purpose at {change['new']}")

slider.observe(fail_on_purpose, names="value")
slider
"""
# the log console's status-bar item shows a count once it holds messages
LOG_BADGE_JS = """
() => {
  const item = document.querySelector('.jp-LogConsoleStatusItem');
  return item ? item.innerText.trim() : null;
}
"""


def test_a_comm_handlers_traceback_fails_the_check_as_the_log_console_shows_it(
        chromium: Any, lab_server: JupyterLabServer, served_notebooks: Path) -> None:
    name = f"kernel-error-watch-{uuid.uuid4().hex[:8]}.ipynb"
    book = nbformat.v4.new_notebook(metadata={"kernelspec": {
        "name": "python3", "display_name": "Python 3", "language": "python"}})
    book.cells = [nbformat.v4.new_code_cell(SOURCE)]
    nbformat.write(book, served_notebooks / name)
    context = chromium.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    errors = collect_console_errors(page)
    try:
        open_notebook(page, lab_server, name, timeout=120)
        run_all_cells(page)
        handle = page.locator(".watched-slider .noUi-handle").first
        handle.wait_for(timeout=60_000)
        page.wait_for_timeout(1000)  # the page's kernel watch hooks the session
        assert not errors, errors  # nothing failed before the slider moved
        handle.focus()
        handle.press("ArrowRight")
        for _ in range(80):  # the handler's traceback comes back through IOPub
            if errors:
                break
            page.wait_for_timeout(250)
        assert any(e.startswith("kernel: ") and "fails on purpose at 1" in e
                   for e in errors), errors
        page.wait_for_function(
            f"() => {{ const t = ({LOG_BADGE_JS})(); return t && /[1-9]/.test(t); }}",
            timeout=10_000)
    finally:
        context.close()
        for session in lab_server.api("GET", "api/sessions") or []:
            lab_server.api("DELETE", f"api/sessions/{session['id']}")
        (served_notebooks / name).unlink(missing_ok=True)
