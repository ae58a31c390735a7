"""Notebook 08 in a real JupyterLab and Chromium, pointed at the tests' own MCP server
(over stdio, as a person edits the TARGET cell): the error-rate slider moves the
proxy's faults, the client guard's breaker opens; back to 0 and it closes."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from cblab.testing import (
    CURRENT_STATE_JS,
    ERROR_RATE_HANDLE,
    HAS_LATENCY_POINTS_JS,
    JupyterLabServer,
    collect_console_errors,
    launch_chromium,
    open_notebook,
    run_all_cells,
)
from cblab.testing import LIVE_CHART as CHART

from ..notebooks.conftest import LAB_ENV
from .conftest import STDIO_SERVER

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "08-your-server.ipynb"


def _pointed_at_the_test_server(dest: Path) -> None:
    book = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in book.cells if c.cell_type == "code" and "TARGET =" in c.source]
    assert len(cells) == 1, "notebook 08 should have one TARGET cell"
    cells[0].source = (f"TARGET = {json.dumps(STDIO_SERVER)}\n"
                       "TOOL = \"echo\"\nARGUMENTS = {\"x\": 1}")
    nbformat.write(book, dest)


def _state_is(page, state: str, timeout_ms: int = 60_000) -> None:
    page.wait_for_function(f"(sel) => ({CURRENT_STATE_JS})(sel) === '{state}'", arg=CHART,
                           timeout=timeout_ms)


@pytest.mark.browser
@pytest.mark.live
def test_your_server_notebook_in_the_browser(tmp_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    served = tmp_path / "notebooks"
    served.mkdir()
    _pointed_at_the_test_server(served / NOTEBOOK.name)
    errors: list[str] = []
    with JupyterLabServer(served, env=dict(LAB_ENV),
                          log_path=artifacts_dir / "your_server_jupyterlab.log") as server:
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1500})
                    errors = collect_console_errors(page)
                    open_notebook(page, server, NOTEBOOK.name, timeout=120)
                    run_all_cells(page)
                    page.wait_for_selector(CHART, timeout=120_000)
                    page.wait_for_function(HAS_LATENCY_POINTS_JS, arg=CHART, timeout=120_000)
                    _state_is(page, "closed")

                    handle = page.locator(ERROR_RATE_HANDLE).first
                    handle.scroll_into_view_if_needed()
                    handle.focus()
                    handle.press("End")
                    assert float(handle.get_attribute("aria-valuenow") or "nan") == 100
                    _state_is(page, "open")
                    page.screenshot(path=str(artifacts_dir / "your_server_open.png"))

                    handle.focus()
                    handle.press("Home")
                    assert float(handle.get_attribute("aria-valuenow") or "nan") == 0
                    _state_is(page, "closed")
                    page.screenshot(path=str(artifacts_dir / "your_server_closed.png"))
                finally:
                    browser.close()
        finally:
            for session in server.api("GET", "api/sessions") or []:
                server.api("DELETE", f"api/sessions/{session['id']}")
    # no console, page or kernel error (a widget handler's traceback included)
    assert not errors, "\n".join(errors)
