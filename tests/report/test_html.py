"""The HTML report: structure, every figure's data, escaping, files written atomically."""

from __future__ import annotations

import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest

from cblab.plots import traces as tr
from cblab.report import ReportError, build_report, write_report
from cblab.report import files as report_files
from cblab.report import html as report_html
from cblab.runs import load_run, save_run
from tests.plots.sample import SCENARIO, sample_events

FIGURES = (
    "state_timeline",
    "latency_scatter",
    "latency_distribution",
    "success_rate",
    "backend_load",
)


class Page(HTMLParser):
    """Tags, ids, links and script texts of a page, checking that tags nest properly."""

    VOID: ClassVar[set[str]] = {"meta", "br", "link", "img", "input", "hr"}

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, str] = {}
        self.links: list[str] = []
        self.scripts: list[str] = []
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []
        self._in_script = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            assert attrs["id"] not in self.ids, f"duplicate id {attrs['id']}"
            self.ids[attrs["id"]] = tag
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data
        else:
            self.text.append(data)


def plot_data(page: Page, div_id: str) -> list[dict]:
    """The traces passed to Plotly.newPlot for the div `div_id`."""
    decoder = json.JSONDecoder()
    for script in page.scripts:
        match = re.search(r'Plotly\.newPlot\(\s*"' + re.escape(div_id) + r'",\s*', script)
        if match:
            data, _ = decoder.raw_decode(script, match.end())
            return data
    raise AssertionError(f"no Plotly.newPlot for {div_id}")


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    events = sample_events()
    protected = save_run(
        root / "p",
        events[events["variant"] == "protected"],
        {
            "name": "sample-protected",
            "kind": "simulated",
            "config": {"users": {"failure_threshold": 2}},
            "scenario": {"name": "blip", "spec": SCENARIO},
            "seed": 3,
            "notes": "<script>alert('x')</script> & friends",
        },
    )
    unprotected = save_run(
        root / "u",
        events[events["variant"] == "unprotected"],
        {"name": "sample-unprotected", "kind": "live", "config": {}},
    )
    return [load_run(protected), load_run(unprotected)]


@pytest.fixture(scope="module")
def page(two_runs) -> Page:
    return Page(build_report(two_runs, plotlyjs="cdn", title="Sample <report>"))


def test_report_is_well_formed_html_with_the_expected_sections(page: Page):
    assert page.stack == []  # every tag closed
    assert page.tags[:2] == ["html", "head"]
    for section in ("top", "toc", "comparison", "comparison-kpis", "run-1", "run-2"):
        assert section in page.ids
    for i in (1, 2):
        assert page.ids[f"run-{i}-meta"] == "dl"
        assert page.ids[f"run-{i}-kpis"] == "table"
        for name in FIGURES:
            assert page.ids[f"run-{i}-{name}"] == "figure"
            assert page.ids[f"run-{i}-{name}-plot"] == "div"
    for name in ("state_timeline", "latency_distribution", "success_rate", "backend_load"):
        assert f"comparison-{name}-plot" in page.ids
    assert "Sample <report>" in "".join(page.text)  # the title, escaped then decoded


def test_every_figure_carries_its_data(page: Page, two_runs):
    events = two_runs[0].events
    latency = {tuple(t["meta"]): t for t in plot_data(page, "run-1-latency_scatter-plot")}
    expected = tr.latency_points(events)[("protected", "success")]
    assert latency[("protected", "success")]["x"] == expected.x
    assert latency[("protected", "success")]["y"] == pytest.approx(expected.y)
    states = {t["meta"][0]: t for t in plot_data(page, "run-1-state_timeline-plot")}
    assert states["open"]["base"] == [2.5]
    load = {tuple(t["meta"]): t for t in plot_data(page, "run-2-backend_load-plot")}
    expected_load = tr.backend_rate_series(two_runs[1].events, 0.5)  # 0.5 s bins: a short run
    assert load[("unprotected", "backend")]["y"] == expected_load[("unprotected", "backend")].y
    assert load[("unprotected", "backend")]["y"][:4] == [0.0, 2.0, 2.0, 2.0]
    boxes = plot_data(page, "run-1-latency_distribution-plot")
    assert boxes[0]["x"][:2] == ["healthy", "outage"]
    rate = plot_data(page, "run-1-success_rate-plot")
    assert rate[0]["meta"] == ["protected"] and len(rate[0]["y"]) > 3
    comparison = {t["meta"][0] for t in plot_data(page, "comparison-success_rate-plot")}
    assert comparison == {"sample-protected", "sample-unprotected"}
    # the unprotected run configures no breaker: its band says so
    bands = {t["meta"][0]: t for t in plot_data(page, "comparison-state_timeline-plot")}
    assert bands["none"]["y"] == ["sample-unprotected · no breaker"]


def test_metadata_is_escaped(two_runs):
    text = build_report(two_runs, plotlyjs="cdn")
    assert "<script>alert(" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; friends" in text


def test_comparison_table_colours_differences(page: Page, two_runs):
    text = build_report(two_runs, plotlyjs="cdn")
    table = text[text.index('id="comparison-kpis"') :]
    table = table[: table.index("</table>")]
    assert "baseline" in table  # the unprotected run is the baseline
    assert 'class="num better"' in table or 'class="num worse"' in table
    assert re.search(r"−\d", table)  # deltas are shown


def test_inline_plotlyjs_once_cdn_small():
    from cblab.runs import Run, RunMeta

    run = Run(RunMeta(name="x"), sample_events())
    inline = build_report([run], plotlyjs="inline")
    cdn = build_report([run], plotlyjs="cdn")
    assert inline.count("Plotly.newPlot(") == cdn.count("Plotly.newPlot(") == len(FIGURES)
    assert len(inline) - len(cdn) > 3_000_000  # plotly.js itself
    assert "cdn.plot.ly" in cdn and "cdn.plot.ly/plotly" not in inline
    assert 'id="comparison"' not in cdn  # one run: no comparison section
    with pytest.raises(ReportError):
        build_report([], plotlyjs="cdn")
    with pytest.raises(ReportError):
        build_report([run], plotlyjs="maybe")


def test_write_report_copies_the_data_and_links_it(tmp_path: Path, two_runs):
    out = tmp_path / "out" / "report.html"
    files = write_report(two_runs, out, plotlyjs="cdn")
    assert files.html == out and out.is_file()
    data_dir = tmp_path / "out" / "report_data"
    assert files.data_dir == data_dir
    page = Page(out.read_text(encoding="utf-8"))
    csv_links = [link for link in page.links if link.endswith("events.csv")]
    assert csv_links == [
        "report_data/01-sample-protected/events.csv",
        "report_data/02-sample-unprotected/events.csv",
    ]
    for link in csv_links:
        copy = tmp_path / "out" / link
        assert copy.is_file()
        assert load_run(copy.parent).name.startswith("sample-")  # each copy is a run
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["report.html", "report_data"]


def test_a_failing_write_keeps_the_previous_report(tmp_path: Path, two_runs, monkeypatch):
    out = tmp_path / "report.html"
    write_report(two_runs[:1], out, plotlyjs="cdn", title="first")
    before = out.read_bytes()
    data_before = sorted(p.name for p in (tmp_path / "report_data").iterdir())

    def boom(*args, **kwargs):
        raise RuntimeError("figure exploded")

    monkeypatch.setattr(report_html, "report_figures", boom)
    with pytest.raises(RuntimeError, match="exploded"):
        write_report(two_runs, out, plotlyjs="cdn", title="second")
    monkeypatch.undo()

    def disk_full(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(report_files, "_write_run_copy", disk_full)  # while copying data
    with pytest.raises(OSError, match="disk full"):
        write_report(two_runs, out, plotlyjs="cdn", title="third")
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report_data"]
    assert sorted(p.name for p in (tmp_path / "report_data").iterdir()) == data_before
    assert len(data_before) == 2  # ABOUT.txt and the first run


def test_write_report_will_not_clobber_a_foreign_data_dir(tmp_path: Path, two_runs):
    (tmp_path / "report_data").mkdir()
    (tmp_path / "report_data" / "mine.txt").write_text("keep me")
    with pytest.raises(ReportError, match="not written by cblab report"):
        write_report(two_runs, tmp_path / "report.html", plotlyjs="cdn")
    assert not (tmp_path / "report.html").exists()
    assert (tmp_path / "report_data" / "mine.txt").read_text() == "keep me"


def test_kpis_come_from_cblab_analysis_and_missing_ones_say_why(two_runs):
    from cblab.report.kpis import run_kpis
    from cblab.runs import Run, RunMeta

    kpis = run_kpis(two_runs[0])
    assert "note" not in kpis.attrs and kpis.attrs["unavailable"] == {}
    assert kpis.loc["protected", "requested"] == 7
    assert kpis.loc["protected", "trips"] == 1
    assert kpis.loc["protected", "detection_s"] == pytest.approx(1.5)  # outage at 1.0, open 2.5
    assert kpis.loc["protected", "latency_p50_ms"] == pytest.approx(30.0)
    broken = Run(
        RunMeta(name="b", config={"users": {}}, scenario={"name": "x", "spec": {"phases": "nope"}}),
        two_runs[0].events,
    )
    partial = run_kpis(broken)
    assert "scenario 'x' cannot be read" in partial.attrs["note"]
    assert partial.loc["protected", "requested"] == 7  # no other definition: analysis's
    assert partial.loc["protected", "trips"] == 1
    assert math.isnan(partial.loc["protected", "wasted"])  # needs the fault phases
    assert "cannot be read" in partial.attrs["unavailable"]["protected"]["wasted"]
    text = build_report([broken], plotlyjs="cdn")
    assert 'class="kpi-source warn"' in text
    table = text[text.index('id="run-1-kpis"') :]
    table = table[: table.index("</table>")]
    assert re.search(r'<td class="num na" title="n/a: the run&#x27;s scenario[^"]*">n/a</td>', table)
