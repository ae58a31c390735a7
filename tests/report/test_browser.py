"""The report in a real browser, and PNGs through kaleido: both need Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest

from cblab.report import export_pngs, write_report
from cblab.runs import load_run

RUNS = Path(__file__).resolve().parents[2] / "data" / "runs"

pytestmark = pytest.mark.browser  # never skipped (tests/conftest.py's `chromium` policy)


@pytest.fixture(scope="module")
def shipped_runs():
    names = ["outage-and-recovery-protected", "outage-and-recovery-unprotected"]
    return [load_run(RUNS / name) for name in names]


def test_report_renders_every_plot_without_console_errors(tmp_path, shipped_runs, artifacts_dir):
    from playwright.sync_api import sync_playwright

    from cblab.testing import collect_console_errors, launch_chromium

    out = tmp_path / "report.html"
    write_report(shipped_runs, out)  # inline plotly.js: works offline
    text = out.read_text(encoding="utf-8")
    expected = text.count("Plotly.newPlot(")
    assert expected == 14  # 4 comparison figures + 5 per run
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors = collect_console_errors(page)
            page.route("http*://**", lambda route: route.abort())  # prove it is offline
            page.goto(out.as_uri())
            page.wait_for_function(
                "n => document.querySelectorAll('.js-plotly-plot').length === n"
                " && [...document.querySelectorAll('.js-plotly-plot')]"
                ".every(d => d._fullLayout && d.querySelector('.main-svg'))",
                arg=expected,
                timeout=60_000,
            )
            drawn = page.evaluate(
                "[...document.querySelectorAll('.js-plotly-plot')].map(d => d.data.length)"
            )
            assert len(drawn) == expected and all(n > 0 for n in drawn)
            assert page.locator("#comparison-kpis td.better").count() > 0
            assert errors == []
            page.screenshot(path=str(artifacts_dir / "report.png"), full_page=True)
            page.locator("#comparison").screenshot(
                path=str(artifacts_dir / "report-comparison.png")
            )
        finally:
            browser.close()
    assert (artifacts_dir / "report.png").stat().st_size > 50_000


def test_png_export_writes_valid_pngs(tmp_path, shipped_runs):
    paths = export_pngs(shipped_runs[:1], tmp_path / "png", only=["run-1-state_timeline"])
    assert [p.name for p in paths] == ["run-1-state_timeline.png"]
    data = paths[0].read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width = int.from_bytes(data[16:20], "big")
    assert width == 1100
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["run-1-state_timeline.png"]
