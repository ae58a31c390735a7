"""Notebook 09 walked in a real JupyterLab and Chromium: Run all, move a weight slider
with the keyboard, the pick table and the heatmaps follow at once, export the report
again and open it from its link, every chart drawn, no console or kernel error.

Uses the one JupyterLab of tests/notebooks/conftest.py and the walks' `page`
fixture and helpers (tests/notebooks/test_browser_walks.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_browser_walks import (  # the walks' fixture and helpers, one definition
    CHARTS_DRAWN_JS,
    _cell_output,
    _no_errors,
    _press,
    _run_cell_containing,
    _shot,
    _watch,
    page,
)

from cblab.testing import JupyterLabServer, open_notebook, run_all_cells

pytestmark = pytest.mark.live

__all__ = ["page"]  # the fixture, imported so pytest finds it here

VIEW = "TuneView(result)"
EXPORT = "write_tune_report"
WASTED = ".widget-slider:has(.widget-label:text-is('wasted call'))"

HEATMAP_Z_JS = """
(text) => {
  const cell = [...document.querySelectorAll('.jp-Cell')]
    .find((c) => c.querySelector('.jp-InputArea')?.textContent.includes(text));
  const plot = cell.querySelector('.jp-OutputArea .js-plotly-plot');
  return JSON.stringify(plot.data.filter((t) => t.type === 'heatmap').map((t) => t.z));
}
"""


def test_09_a_weight_slider_repicks_and_the_report_opens(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    open_notebook(page, lab_server, "09-tune-your-breaker.ipynb", timeout=120)
    run_all_cells(page)
    table = _cell_output(page, VIEW).locator("table.tune-pick").first
    table.wait_for(timeout=300_000)  # the loop runs first: a sweep of 15 x 4 x 3 runs
    _cell_output(page, EXPORT).locator("a.cblab-report-link").first.wait_for(timeout=120_000)
    page.wait_for_function(CHARTS_DRAWN_JS, timeout=180_000)  # the widget's bundle loads
    before, heat_before = table.inner_text(), page.evaluate(HEATMAP_Z_JS, VIEW)

    value = _press(page, WASTED, "End")  # a wasted call now costs 20 failed ones
    assert value == 20.0
    page.wait_for_function(
        "([sel, old]) => { const t = document.querySelector(sel);"
        " return t && t.innerText !== old; }",
        arg=[".jp-OutputArea table.tune-pick", before], timeout=60_000)
    page.wait_for_function(f"([text, old]) => ({HEATMAP_Z_JS})(text) !== old",
                           arg=[VIEW, heat_before], timeout=60_000)  # redrawn, new costs
    assert "cost per 1k requests" in _cell_output(page, VIEW).inner_text()
    _shot(page, "09-repicked", artifacts_dir,
          f".jp-Cell:has(.jp-InputArea:has-text('{VIEW}')) .jp-OutputArea")

    # export again: the report holds the weights the slider set, and opens from its link
    old_link = _cell_output(page, EXPORT).locator("a.cblab-report-link").first
    old_link.evaluate("a => a.remove()")
    _run_cell_containing(page, EXPORT)
    link = _cell_output(page, EXPORT).locator("a.cblab-report-link").first
    link.wait_for(timeout=120_000)
    errors: list[str] = []
    page.context.on("page", lambda p: _watch(p, errors))
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    assert report.url.startswith("http://127.0.0.1:") and report.url.endswith(".html"), report.url
    report.wait_for_function(CHARTS_DRAWN_JS, timeout=60_000)
    assert report.locator(".js-plotly-plot").count() == 3
    assert "a wasted call 20" in report.locator("#pick").inner_text()
    for section in ("pick", "fit", "sweep", "timings"):
        assert report.locator(f"section#{section}").count() == 1
    _shot(report, "09-report", artifacts_dir)
    assert not errors, errors
    _no_errors(page)
