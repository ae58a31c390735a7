"""The live lab in a real JupyterLab and Chromium: run all, trip the breaker with the
error-rate slider, watch the state chart go OPEN, move it back and watch it close.

Breaker timeouts are small (environment variables the notebook's parameters cell
reads), so recovery takes seconds. Never skipped: CI has Chromium (`make system-deps`).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from cblab.testing import (
    JupyterLabServer,
    collect_console_errors,
    launch_chromium,
    open_notebook,
    run_all_cells,
)

NOTEBOOKS_DIR = Path(__file__).resolve().parents[2] / "notebooks"
CHART = ".cblab-live-chart.js-plotly-plot, .cblab-live-chart .js-plotly-plot"
ERROR_RATE_HANDLE = ".cblab-error-rate .noUi-handle"

# The breaker's current state as the chart shows it: the state of the band segment
# that ends last (the current one ends "now").
CURRENT_STATE_JS = """
(sel) => {
  const el = document.querySelector(sel);
  if (!el || !el.data) return null;
  let best = null;
  for (const trace of el.data) {
    const meta = trace.meta;
    if (!meta || meta[0] !== 'state' || !trace.base) continue;
    for (let i = 0; i < trace.base.length; i++) {
      const base = Number(trace.base[i]), end = base + Number(trace.x[i]);
      if (best === null || end > best.end || (end === best.end && base > best.base)) {
        best = {state: meta[1], end: end, base: base};
      }
    }
  }
  return best && best.state;
}
"""

HAS_LATENCY_POINTS_JS = """
(sel) => {
  const el = document.querySelector(sel);
  if (!el || !el.data) return false;
  return el.data.some((t) => t.meta && t.meta[0] === 'latency' && t.x && t.x.length > 0);
}
"""

LAB_ENV = {
    "CBLAB_BREAKER_TIMEOUT": "1",
    "CBLAB_FAILURE_THRESHOLD": "3",
    "CBLAB_RUN_SECONDS": "300",  # a safety bound; the session is deleted long before
    "CBLAB_WAIT": "0",
    "CBLAB_UPDATE_HZ": "5",
    "FASTMCP_ENABLE_RICH_TRACEBACKS": "false",
}


def _screenshot(page: Any, path: Path) -> None:
    """The live panel only. (An element screenshot waits for the element to stop
    changing, which a live chart never does: clip a page screenshot instead.)"""
    panel = page.locator(".cblab-live").first
    panel.scroll_into_view_if_needed()
    box = panel.bounding_box()
    assert box is not None
    page.screenshot(path=str(path), clip=box, full_page=True)


@pytest.mark.browser
@pytest.mark.live
def test_live_lab_slider_trips_and_recovers(tmp_path: Path, artifacts_dir: Path) -> None:
    from playwright.sync_api import sync_playwright

    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def mark(name: str) -> None:
        marks[name] = round(time.perf_counter() - t0, 2)

    # JupyterLab saves what it shows (outputs included): serve a copy, so the
    # committed notebook stays clean.
    served = tmp_path / "notebooks"
    served.mkdir()
    shutil.copy(NOTEBOOKS_DIR / "03-live-lab.ipynb", served)
    env = {**LAB_ENV, "CBLAB_REPORT_DIR": str(tmp_path / "reports")}
    errors: list[str] = []
    with JupyterLabServer(
        served, env=env, log_path=artifacts_dir / "live_lab_jupyterlab.log"
    ) as server:
        mark("server_ready")
        try:
            with sync_playwright() as p:
                browser = launch_chromium(p)
                try:
                    page = browser.new_page(viewport={"width": 1400, "height": 1500})
                    errors = collect_console_errors(page)
                    open_notebook(page, server, "03-live-lab.ipynb", timeout=120)
                    mark("kernel_idle")

                    run_all_cells(page)
                    run_all = time.perf_counter()
                    page.wait_for_selector(CHART, timeout=120_000)
                    page.wait_for_function(HAS_LATENCY_POINTS_JS, arg=CHART, timeout=120_000)
                    marks["run_all_to_first_chart_s"] = round(time.perf_counter() - run_all, 2)
                    page.wait_for_function(
                        f"(sel) => ({CURRENT_STATE_JS})(sel) === 'closed'", arg=CHART,
                        timeout=60_000,
                    )
                    mark("closed_at_start")

                    handle = page.locator(ERROR_RATE_HANDLE).first
                    handle.scroll_into_view_if_needed()
                    handle.focus()
                    handle.press("End")
                    assert float(handle.get_attribute("aria-valuenow") or "nan") == 100
                    page.wait_for_function(
                        f"(sel) => ({CURRENT_STATE_JS})(sel) === 'open'", arg=CHART,
                        timeout=60_000,
                    )
                    mark("open_after_end")
                    page.wait_for_timeout(1500)  # a little OPEN history for the picture
                    _screenshot(page, artifacts_dir / "live_lab_open.png")

                    handle.focus()
                    handle.press("Home")
                    assert float(handle.get_attribute("aria-valuenow") or "nan") == 0
                    page.wait_for_function(
                        f"(sel) => ({CURRENT_STATE_JS})(sel) === 'closed'", arg=CHART,
                        timeout=60_000,
                    )
                    mark("closed_after_home")
                    page.wait_for_timeout(2500)
                    _screenshot(page, artifacts_dir / "live_lab.png")

                    # The status line agrees with the chart, and Export report works.
                    badge = page.locator(".cblab-live-status .badge").first
                    assert badge.get_attribute("data-state") == "closed"
                    page.locator("button.cblab-export").first.click()
                    message = page.locator(".cblab-export-message").first
                    try:
                        message.locator("a").wait_for(timeout=90_000)
                    except Exception:
                        pytest.fail(f"no report link; the panel says: {message.inner_text()!r}")
                    link = message.locator("a").first.inner_text()
                    assert link.endswith(".html"), link
                    mark("exported")
                finally:
                    browser.close()
        finally:
            for session in server.api("GET", "api/sessions") or []:
                server.api("DELETE", f"api/sessions/{session['id']}")
    mark("total")

    (artifacts_dir / "live_lab_timings.json").write_text(json.dumps(marks, indent=2))
    (artifacts_dir / "live_lab_console.txt").write_text("\n".join(errors))
    print(f"live lab browser timings (s): {marks}")
    reports = list((tmp_path / "reports").glob("*.html"))
    assert len(reports) == 1
    page_errors = [e for e in errors if e.startswith("pageerror:")]
    assert not page_errors, page_errors
