"""`cblab tune --report`: the loop's HTML report holds every section, its numbers are
the TuneResult's, and Chromium draws every chart without a console error."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cblab.cli import main as cblab_main
from cblab.tune import tune
from cblab.tune.report import SECTIONS, build_tune_report, write_tune_report

from .traffic import crafted_rows, write_rows

GRID = {"failure_threshold": [3, 10], "timeout": [5.0, 30.0]}


class Verification:
    """The shape engineer "verify" delivers: `.table()` and `.warnings`."""

    warnings: tuple[str, ...] = ("p99 latency live 2.1 s, predicted 0.4-0.9 s: outside the seed range",)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"kpi": ["availability", "wasted", "p99_s"],
                             "live": [0.971, 41.0, 2.1], "predicted_low": [0.95, 30.0, 0.4],
                             "predicted_high": [0.99, 45.0, 0.9],
                             "inside": [True, True, False]})


@pytest.fixture(scope="module")
def result() -> Any:
    return tune(crafted_rows(), {}, grid=GRID, seeds=2, workers=1, name="crafted",
                variants=["observed", "flapping"])


def _values(page: str, table_id: str) -> list[list[float]]:
    """The data-value of every number cell of a table, row by row."""
    body = re.search(rf'<table id="{table_id}">.*?<tbody>(.*?)</tbody>', page, re.S)
    assert body, f"no table {table_id}"
    return [[float(v) for v in re.findall(r'data-value="([^"]+)"', row)]
            for row in re.findall(r"<tr>(.*?)</tr>", body.group(1), re.S)]


def test_the_report_has_every_section_and_verification_only_when_set(result: Any) -> None:
    page = build_tune_report(result, plotlyjs="cdn")
    for sid, heading in (("pick", "The pick"), ("fit", "Fit quality"), ("sweep", "The sweep"),
                         ("timings", "What it took")):
        assert f'<section id="{sid}" class="card"><h2>{heading}</h2>' in page
        assert f'href="#{sid}"' in page  # in the table of contents
    assert 'id="verification"' not in page
    assert [sid for sid, *_ in SECTIONS] == ["pick", "fit", "sweep", "verification", "timings"]
    verified = build_tune_report(dataclasses.replace(result, verification=Verification()),
                                 plotlyjs="cdn")
    assert '<section id="verification" class="card"><h2>Verification</h2>' in verified
    assert "2 of 3 live KPI(s) inside" in verified
    assert verified.count('class="inside"') == 2 and verified.count('class="outside"') == 1
    assert "outside the seed range" in verified
    assert _values(verified, "verification-table") == [
        [0.971, 0.95, 0.99], [41.0, 30.0, 45.0], [2.1, 0.4, 0.9]]


def test_the_reports_numbers_are_the_results(result: Any) -> None:
    page = build_tune_report(result, plotlyjs="cdn")
    table = result.pick_table()
    assert _values(page, "pick-table") == table.to_numpy().tolist()  # exact, not rounded
    config = re.search(r'<pre class="config" id="pick-config">(.*?)</pre>', page, re.S)
    assert config and json.loads(config.group(1).replace("&quot;", '"')) == result.config
    fit_rows = [v for row in _values(page, "fit-quantiles") for v in row]
    expected = [v for phase in result.fit.phases for q in (0.5, 0.9, 0.99)
                for v in (phase.latency.observed_ms[q], phase.latency.fitted_ms[q])]
    assert fit_rows == pytest.approx(expected, abs=0.01)  # the fit's quality rounds to 0.01
    assert _values(page, "timings-table") == [[v] for v in result.timings.values()]


def test_a_repick_changes_the_report(result: Any) -> None:
    cheap_refusals = result.repick(kind="cost", cost_wasted=100.0)
    page = build_tune_report(cheap_refusals, plotlyjs="cdn")
    assert "a wasted call 100" in page
    assert _values(page, "pick-table") == cheap_refusals.pick_table().to_numpy().tolist()


def test_tune_report_writes_the_page_and_the_config(result: Any, tmp_path: Path) -> None:
    page = write_tune_report(result, tmp_path / "new" / "report", plotlyjs="cdn")
    assert page == tmp_path / "new" / "report" / "index.html"
    assert json.loads((page.parent / "config.json").read_text()) == result.config


def test_the_command_writes_the_report(tmp_path: Path, capsys: Any) -> None:
    run = write_rows(tmp_path / "traffic.json", crafted_rows())
    out = tmp_path / "report"
    code = cblab_main(["tune", str(run), "--param", "failure_threshold=3,10", "--param",
                       "timeout=5,30", "--seeds", "2", "--workers", "1", "--variants",
                       "observed,longer", "--report", str(out)])
    assert code == 0, capsys.readouterr().err
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("Plotly.newPlot(") == 3
    assert "traffic-observed" in page


def test_a_report_path_that_is_a_file_is_refused_before_any_work(tmp_path: Path,
                                                                 capsys: Any) -> None:
    run = write_rows(tmp_path / "traffic.json", crafted_rows())
    taken = tmp_path / "taken"
    taken.write_text("x")
    assert cblab_main(["tune", str(run), "--report", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"cblab tune: --report {taken}: not a directory"
    assert cblab_main(["tune", str(run), "--report", str(tmp_path / "no" / "dir")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_the_report_draws_every_chart_in_chromium(result: Any, tmp_path: Path, chromium: Any,
                                                  artifacts_dir: Path) -> None:
    from cblab.testing import collect_console_errors

    page_path = write_tune_report(dataclasses.replace(result, verification=Verification()),
                                  tmp_path / "report")  # plotly.js inline: works offline
    expected = page_path.read_text(encoding="utf-8").count("Plotly.newPlot(")
    assert expected == 3  # the pick's CIs, the fit, the heatmaps
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    try:
        errors = collect_console_errors(page)
        page.route("http*://**", lambda route: route.abort())  # prove it is offline
        page.goto(page_path.as_uri())
        page.wait_for_function(
            "n => document.querySelectorAll('.js-plotly-plot').length === n"
            " && [...document.querySelectorAll('.js-plotly-plot')]"
            ".every(d => d._fullLayout && d.querySelector('.main-svg'))",
            arg=expected, timeout=60_000)
        heatmaps = page.evaluate(
            "document.getElementById('sweep-heatmaps-plot').data"
            ".filter(t => t.type === 'heatmap').map(t => t.z)")
        assert len(heatmaps) == 1 + len(result.variant_names)
        drawn = [value for row in heatmaps[0] for value in row]
        assert drawn == pytest.approx(result.objective_grid().to_numpy().ravel().tolist())
        assert page.locator("#verification-table td.outside").count() == 1
        assert errors == []
        page.screenshot(path=str(artifacts_dir / "tune-report.png"), full_page=True)
    finally:
        page.close()
