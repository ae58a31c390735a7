"""Every notebook's interactive path, walked in a real JupyterLab and Chromium.

What a person does (Run all, press buttons, move sliders with the keyboard, press
Stop, open the report link) and what they look for on the screen: the breaker's
state in the live chart and the status badge, a refused setting's message, the
stepper's counters, a report with its charts drawn and no console errors. Each
walk saves a screenshot under artifacts/walks/.

One JupyterLab serves every walk (tests/notebooks/conftest.py); each walk opens
its notebook in a fresh workspace and deletes its kernel session at the end, so
live loops stop. Breaker timeouts are 1 s, so trips and recoveries take seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest

from cblab.testing import (
    BAND_STATE_JS,
    HAS_LATENCY_POINTS_JS,
    LIVE_CHART,
    JupyterLabServer,
    KernelTraffic,
    collect_console_errors,
    open_notebook,
    page_diagnosis,
    run_all_cells,
    wait_for_kernel_idle,
)

pytestmark = pytest.mark.live

CHART = LIVE_CHART
# Run all -> the live chart (7-10 s on a quiet machine; 04 runs its sweeps first), then
# its first points: the stack's start (50-57 s at load 15-17), which the lab bounds
# itself (60 s to start, 60 s to connect: then the status line says why). Was 180 s +
# 120 s while a chart could stay blank for good (issue 19, cblab.lab.whole_widget).
FIRST_CHART_S = 90
FIRST_POINTS_S = 120

# A widget button navigates nowhere: do not wait for "scheduled navigations" after the
# click (on a loaded machine playwright waited out its 30 s there, the click long done).
WIDGET_CLICK: dict[str, Any] = {"no_wait_after": True}

# Every plotly chart on the page drawn (a layout and an SVG with data in it).
CHARTS_DRAWN_JS = """
() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  return plots.length > 0 && plots.every((d) => d._fullLayout && d.querySelector('.main-svg')
                                          && d.data && d.data.length > 0);
}
"""


@pytest.fixture
def page(chromium: Any, lab_server: JupyterLabServer, committed_notebooks: Path) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1400, "height": 1500})
    page = context.new_page()
    page.errors = collect_console_errors(page)  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()
        for session in lab_server.api("GET", "api/sessions") or []:
            lab_server.api("DELETE", f"api/sessions/{session['id']}")


def _no_errors(page: Any) -> None:
    """Nothing went wrong out of sight: no console error, no uncaught page error, and
    no kernel error (an error output, or a traceback on stderr such as a widget's comm
    handler logs, which only JupyterLab's log console shows)."""
    assert not page.errors, "\n".join(page.errors)


def _shot(page: Any, name: str, artifacts_dir: Path, selector: str | None = None) -> None:
    """A picture of what the person sees. (An element screenshot waits for the
    element to stop changing, which a live chart never does: clip a page shot.)"""
    folder = artifacts_dir / "walks"
    folder.mkdir(exist_ok=True)
    clip = None
    if selector is not None:
        element = page.locator(selector).first
        element.scroll_into_view_if_needed()
        clip = element.bounding_box()
    page.screenshot(path=str(folder / f"{name}.png"), clip=clip, full_page=True)


def _wait_state(page: Any, band: str | None, state: str, timeout_s: float = 60) -> None:
    page.wait_for_function(f"(a) => ({BAND_STATE_JS})(a) === {state!r}", arg=[CHART, band],
                           timeout=timeout_s * 1000)


def _start_live(page: Any, lab_server: JupyterLabServer, notebook: str) -> None:
    open_notebook(page, lab_server, notebook, timeout=120)
    run_all_cells(page)
    try:
        page.wait_for_selector(CHART, timeout=FIRST_CHART_S * 1000)
        page.wait_for_function(HAS_LATENCY_POINTS_JS, arg=CHART, timeout=FIRST_POINTS_S * 1000)
    except Exception as exc:  # say what the page and the kernel were doing meanwhile
        raise AssertionError(f"{notebook}: no live chart with data ({exc});\n"
                             + page_diagnosis(page, lab_server)
                             + "\npage errors: " + "\n".join(page.errors)) from exc


def _press(page: Any, selector: str, key: str) -> float:
    handle = page.locator(f"{selector} .noUi-handle").first
    handle.scroll_into_view_if_needed()
    handle.focus()
    handle.press(key)
    return float(handle.get_attribute("aria-valuenow") or "nan")


def _open_report(page: Any, link: Any) -> tuple[Any, list[str]]:
    """Click a report link as a person would; the report must open in a new tab
    of the browser (not in JupyterLab) with every chart drawn."""
    errors: list[str] = []
    page.context.on("page", lambda p: _watch(p, errors))
    with page.context.expect_page() as opened:
        link.click()
    report = opened.value
    report.wait_for_load_state()
    # JupyterLab runs on this machine: the report comes from the loopback report server
    assert report.url.startswith("http://127.0.0.1:") and report.url.endswith(".html"), report.url
    report.wait_for_function(CHARTS_DRAWN_JS, timeout=60_000)
    # Its data links answer (from the Jupyter server's /files/ they were refused, 403).
    data = report.locator("a.data-link")
    assert data.count() >= 2
    for i in range(2):
        href = urljoin(report.url, data.nth(i).get_attribute("href"))
        answer = report.request.get(href)
        assert answer.ok, (href, answer.status)
        body = answer.text()
        assert (json.loads(body) if href.endswith(".json") else body.split(",", 1)[0]), href
    return report, errors


def _watch(page: Any, errors: list[str]) -> None:
    page.on("console", lambda m: m.type == "error" and errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))


def _run_cell_containing(page: Any, text: str) -> None:
    page.evaluate(
        """(text) => {
            const panel = window.jupyterapp.shell.currentWidget;
            const cells = panel.content.widgets;
            const i = cells.findIndex((c) => c.model.sharedModel.getSource().includes(text));
            if (i < 0) throw new Error('no cell contains ' + text);
            panel.content.activeCellIndex = i;
            return window.jupyterapp.commands.execute('notebook:run-cell');
        }""",
        text,
    )


def _cell_output(page: Any, text: str) -> Any:
    """The output area of the cell whose source contains `text`."""
    return page.locator(".jp-Cell", has=page.locator(".jp-InputArea", has_text=text)).locator(
        ".jp-OutputArea").first


# --- 01: the hang, and recovery ------------------------------------------------------------


#: A chart JupyterLab rendered from a cell's plotly output (not a widget).
STATIC_CHART = ".jp-RenderedPlotly.js-plotly-plot"


def test_01_hang_button_trips_the_protected_breaker_and_it_recovers(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    _start_live(page, lab_server, "01-why-circuit-breakers.ipynb")
    _wait_state(page, "protected · github", "closed")
    page.locator(".cblab-outage button", has_text="hang").first.click(**WIDGET_CLICK)
    _wait_state(page, "protected · github", "open")
    # the status line agrees (its HTML is rewritten a few times a second: select anew)
    page.wait_for_selector('.cblab-live-status .badge[data-state="open"], '
                           '.cblab-live-status .badge[data-state="half_open"]', timeout=30_000)
    _shot(page, "01-hang", artifacts_dir, ".cblab-live")
    page.locator(".cblab-outage button", has_text="up").first.click(**WIDGET_CLICK)
    _wait_state(page, "protected · github", "closed")
    status = page.locator(".cblab-live-status").first.inner_text()
    assert "protected" in status and "unprotected" in status and "no breaker" in status
    _shot(page, "01-recovered", artifacts_dir, ".cblab-live")
    # The page's other plotly charts are skipped while off-screen (the lab's stylesheet):
    # Chromium re-layerized their markers on every live redraw (38-75 ms each in 01).
    page.wait_for_selector(STATIC_CHART, state="attached", timeout=60_000)
    skipped = page.evaluate(
        "(sel) => [...document.querySelectorAll(sel)].map(e => getComputedStyle(e).contentVisibility)",
        STATIC_CHART)
    assert skipped and set(skipped) == {"auto"}, skipped
    _no_errors(page)


# --- 02: the stepper through every move, and Reset -----------------------------------------


COUNTER_JS = """
(key) => {
  for (const tr of document.querySelectorAll('.cblab-counters tr')) {
    const td = tr.querySelectorAll('td');
    if (td.length === 2 && td[0].innerText.trim() === key) return td[1].innerText.trim();
  }
  return null;
}
"""


def _counters(page: Any) -> dict[str, str]:
    rows = page.locator(".cblab-counters tr")
    out = {}
    for i in range(rows.count()):
        cells = rows.nth(i).locator("td")
        out[cells.nth(0).inner_text().strip()] = cells.nth(1).inner_text().strip()
    return out


def test_02_stepper_walks_every_move_and_reset_starts_over(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    open_notebook(page, lab_server, "02-state-machine.ipynb", timeout=120)
    run_all_cells(page)
    page.wait_for_selector(".cblab-counters tr", timeout=120_000)
    wait_for_kernel_idle(page, timeout=120, stable_for=2.0)  # every cell has run
    # Run all leaves the panel as it was built: nothing pressed yet.
    counters = _counters(page)
    assert counters["state"] == "CLOSED" and counters["clock"] == "0 s", counters
    assert counters["trips"] == "0" and counters["calls admitted"] == "0", counters

    def click(name: str, times: int = 1, **expect: str) -> dict[str, str]:
        """Press a button; wait until the counters show `expect` (the kernel answers
        each press in its own time)."""
        for _ in range(times):
            page.locator(f"button.cblab-{name}").first.click(**WIDGET_CLICK)
        for key, value in expect.items():
            page.wait_for_function(f"(a) => ({COUNTER_JS})(a[0]) === a[1]",
                                   arg=[key.replace("_", " "), value], timeout=30_000)
        return _counters(page)

    click("fail", 3, state="OPEN", trips="1")  # CLOSED -> OPEN
    click("succeed", rejected="1")  # refused at once, the dependency not called
    click("advance", 2, clock="10 s", state="HALF-OPEN")  # OPEN -> HALF-OPEN (10 s timeout)
    click("fail", state="OPEN")  # HALF-OPEN -> OPEN: the trial failed
    click("advance", 2, clock="20 s", state="HALF-OPEN")
    click("succeed", 2, state="CLOSED")  # HALF-OPEN -> CLOSED
    log = page.locator(".cblab-log").first.inner_text()
    assert "HALF-OPEN" in log and "HALF_OPEN" not in log
    _shot(page, "02-stepper", artifacts_dir, ".cblab-state-machine")
    # An impossible setting is refused, with the reason, under the sliders: clear of
    # every slider's readout.
    assert _press(page, ".cblab-state-machine .cblab-success-threshold", "End") == 5
    refusal = page.locator(".cblab-state-machine .cblab-config-message .cblab-error").first
    refusal.wait_for(timeout=30_000)
    assert "Not applied" in refusal.inner_text()
    box = page.locator(".cblab-state-machine .cblab-config-message").first.bounding_box()
    readouts = page.locator(".cblab-state-machine .widget-readout")
    for i in range(readouts.count()):
        r = readouts.nth(i).bounding_box()
        assert r["y"] + r["height"] <= box["y"] or r["x"] + r["width"] <= box["x"], (r, box)
    _press(page, ".cblab-state-machine .cblab-success-threshold", "Home")
    page.locator(".cblab-state-machine .cblab-config-message >> text=applied").wait_for(
        timeout=30_000)
    reset = click("reset", clock="0 s", trips="0")
    assert reset["state"] == "CLOSED", reset
    assert reset["rejected"] == reset["calls admitted"] == "0", reset
    assert "counts and history at 0" in page.locator(".cblab-log").first.inner_text()
    _no_errors(page)


# --- 03: the live lab: trip, a refused setting, Stop, Export -------------------------------


def test_03_live_lab_trip_refused_setting_stop_and_export(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    traffic = KernelTraffic(page)  # before the notebook opens its kernel's websocket
    _start_live(page, lab_server, "03-live-lab.ipynb")
    _wait_state(page, None, "closed")
    traffic.recording = True
    assert _press(page, ".cblab-error-rate", "End") == 100
    _wait_state(page, None, "open")
    assert _press(page, ".cblab-error-rate", "Home") == 0
    _wait_state(page, None, "closed")
    # A setting that could never close the breaker is refused, with the reason.
    assert _press(page, ".cblab-success-threshold", "End") == 10
    message = page.locator(".cblab-config-message").first
    message.locator(".bad").wait_for(timeout=10_000)
    assert re.search(r"Not applied: .*half_open_max_calls", message.inner_text())
    status = page.locator(".cblab-live-status").first.inner_text()
    assert "in the last 5 s" in status and "since the start" in status
    _shot(page, "03-live-lab", artifacts_dir, ".cblab-live")
    traffic.recording = False
    _acknowledged_lean(traffic)

    page.locator("button.cblab-stop").first.click(**WIDGET_CLICK)
    page.wait_for_selector(".cblab-live-status >> text=Stopped", timeout=30_000)
    assert page.locator("button.cblab-stop").first.is_disabled()
    assert page.locator(".cblab-error-rate.cblab-ended").count() == 1  # looks inactive
    assert _press(page, ".cblab-error-rate", "End") == 0  # and is: the slider is disabled

    page.locator("button.cblab-export").first.click(**WIDGET_CLICK)
    link = page.locator(".cblab-export-message a").first
    link.wait_for(timeout=90_000)
    assert link.get_attribute("target") == "_blank"
    report, errors = _open_report(page, link)
    _shot(report, "03-report", artifacts_dir)
    assert not errors, errors
    _no_errors(page)


def _acknowledged_lean(traffic: KernelTraffic) -> None:
    """The chart acknowledged what it drew in one small message per edit, not echoed
    back (cblab.lab.lean_acks): plotly's own view sent every trace's data and a second,
    unread, layout message each time, and the kernel echoed the first."""
    acks = traffic.updates("_js2py_traceDeltas", sent=True)
    assert len(acks) >= 5, traffic.messages[-20:]
    assert max(m.size for m in acks) < 8_000, sorted(m.size for m in acks)[-5:]
    assert not traffic.updates("_js2py_widget_layoutDelta", sent=True)
    echoed = [m for m in traffic.updates("_js2py_traceDeltas", sent=False)
              if m.method == "echo_update"]
    assert not echoed


# --- 04: the live check, then the comparison after Stop ------------------------------------


def test_04_live_check_then_compare_after_stop(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    _start_live(page, lab_server, "04-tuning.ipynb")
    page.wait_for_timeout(3000)  # a few seconds of the scenario
    page.locator("button.cblab-stop").first.click(**WIDGET_CLICK)
    page.wait_for_selector(".cblab-live-status >> text=Stopped", timeout=30_000)
    _shot(page, "04-live-check", artifacts_dir, ".cblab-live")
    _run_cell_containing(page, "if lab.finished:")
    output = _cell_output(page, "if lab.finished:")
    output.locator("table").wait_for(timeout=60_000)
    text = output.inner_text()
    assert "still running" not in text
    for row in ("availability", "trips"):
        assert row in text, text
    assert re.search(r"stopped at \d+ s of the [\d.]+ s scenario", text), text
    _shot(page, "04-compare", artifacts_dir)
    _no_errors(page)


# --- 06: the recorded runs' report, opened from its link -----------------------------------


def test_06_report_opens_from_its_link_with_charts_drawn(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    open_notebook(page, lab_server, "06-reports.ipynb", timeout=120)
    run_all_cells(page)
    link = page.locator("a.cblab-report-link").first
    link.wait_for(timeout=180_000)
    report, errors = _open_report(page, link)
    _shot(report, "06-report", artifacts_dir)
    assert report.locator(".js-plotly-plot").count() >= 5
    assert not errors, errors
    # the spans view: a press traces five live calls in the background; their spans fill
    # its table (the first press starts a server and imports OpenTelemetry: generous)
    page.bring_to_front()
    page.get_by_role("button", name="Trace 5 calls").click(**WIDGET_CLICK)
    page.wait_for_function(
        "() => document.querySelectorAll('table.cblab-spans tbody tr').length === 5",
        timeout=120_000)
    assert page.locator("table.cblab-spans").first.inner_text().count("traced/forecast") == 5
    _shot(page, "06-spans", artifacts_dir, ".cblab-spans-table")
    _no_errors(page)


def _run_to_table(page: Any, lab_server: JupyterLabServer, notebook: str, cell: str,
                  timeout_s: float = 120) -> str:
    """Run all of `notebook`; the text of the table the cell containing `cell` shows."""
    open_notebook(page, lab_server, notebook, timeout=120)
    run_all_cells(page)
    table = _cell_output(page, cell).locator("table").first
    table.wait_for(timeout=timeout_s * 1000)
    return str(table.inner_text())


# --- 00: the parameters in effect, as a table ----------------------------------------------


def test_00_index_shows_its_parameters_as_a_table(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    text = _run_to_table(page, lab_server, "00-index.ipynb", "LabParams.from_env()")
    for shown in ("Parameters in effect", "CBLAB_RUN_SECONDS", "CBLAB_BREAKER_TIMEOUT",
                  "update_hz"):
        assert shown in text, text
    assert "LabParams(" not in _cell_output(page, "LabParams.from_env()").inner_text()
    _shot(page, "00-index", artifacts_dir)
    _no_errors(page)


# --- 07: live replicas, local vs shared, then the sweep over 1..32 ---------------------------


TICKS_JS = """(title) => {
  const plot = [...document.querySelectorAll('.js-plotly-plot')]
    .find((d) => d.layout && d.layout.title && String(d.layout.title.text || '').includes(title));
  return plot ? [...plot.querySelectorAll('.xtick text')].map((t) => t.textContent) : null;
}"""


def test_07_replicas_table_and_sweep_axes(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    text = _run_to_table(page, lab_server, "07-replicas.ipynb", "replicas_table(result)",
                         timeout_s=240)
    assert "calls reaching the failing backend" in text and "local" in text and "shared" in text
    page.wait_for_function(f"() => ({TICKS_JS})('Trial calls') !== null", timeout=120_000)
    for title in ("Failing calls until", "Trial calls"):
        ticks = page.evaluate(TICKS_JS, title)
        assert ticks == ["1", "2", "4", "8", "16", "32"], (title, ticks)
    _shot(page, "07-replicas", artifacts_dir)
    _no_errors(page)


# --- 05: the simulated patterns (no controls): every chart and table shown, no errors ------


def test_05_patterns_draw_their_charts_and_tables(
    page: Any, lab_server: JupyterLabServer, artifacts_dir: Path
) -> None:
    open_notebook(page, lab_server, "05-related-patterns.ipynb", timeout=120)
    run_all_cells(page)
    _cell_output(page, "queueing_lesson").locator("table").first.wait_for(timeout=240_000)
    page.wait_for_function(CHARTS_DRAWN_JS, timeout=60_000)
    assert page.locator(".js-plotly-plot").count() >= 2
    assert page.locator(".jp-OutputArea table").count() >= 3  # two summaries, the lesson
    _shot(page, "05-patterns", artifacts_dir)
    _no_errors(page)
