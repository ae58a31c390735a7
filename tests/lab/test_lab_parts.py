"""The live lab's small parts: tables for people, report links, draw pacing, chart styles."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cblab.lab import links
from cblab.lab.pacing import DrawPacer
from cblab.lab.tables import format_figure, show_table


def test_figures_read_as_the_report_shows_them() -> None:
    assert format_figure("availability", 0.71683) == "71.7 %"
    assert format_figure("latency_p99_s", 2.0) == "2,000 ms"
    assert format_figure("latency_p50_s", 0.0229) == "22.9 ms"
    assert format_figure("recovery_s", float("nan")) == "never"
    assert format_figure("recovery_s", None, "no scenario") == "n/a: no scenario"
    assert format_figure("succeeded", 3695.0) == "3,695"
    assert format_figure("availability_pct", 76.93) == "76.9 %"


def test_show_table_finds_the_kpi_side_and_explains_missing_figures() -> None:
    by_row = pd.DataFrame({"unprotected": [0.756, 0.0, float("nan")],
                           "protected": [0.717, 1.0, 1.27],
                           "protected / unprotected": [0.948, float("nan"), float("nan")]},
                          index=["availability", "trips", "recovery_s"])
    text = show_table(by_row).data
    assert text.loc["availability", "protected"] == "71.7 %"
    assert text.loc["recovery_s", "unprotected"] == "n/a: the breaker never opened"
    assert text.loc["recovery_s", "protected"] == "1.27 s"
    assert text.loc["availability", "protected / unprotected"] == "× 0.95"
    by_column = by_row.T.iloc[:2]
    assert show_table(by_column).data.loc["protected", "availability"] == "71.7 %"


def test_report_links_use_the_jupyter_servers_files_route(monkeypatch: Any,
                                                          tmp_path: Path) -> None:
    report = tmp_path / "reports" / "run.html"
    report.parent.mkdir()
    report.write_text("<html></html>")
    monkeypatch.setattr(links, "_servers", lambda: [
        {"root_dir": "/elsewhere", "base_url": "/"},
        {"root_dir": str(tmp_path), "base_url": "/user/me/"},
    ])
    assert links.file_url(report) == "/user/me/files/reports/run.html"
    html = links.report_link_html(report)
    assert 'href="/user/me/files/reports/run.html"' in html and 'target="_blank"' in html
    monkeypatch.setattr(links, "_servers", list)  # no Jupyter server: the file itself
    assert links.file_url(report) == report.resolve().as_uri()


class _Figure:
    """What DrawPacer reads of a FigureWidget."""

    def __init__(self) -> None:
        self._last_trace_edit_id = 0
        self.handler: Any = None

    def observe(self, handler: Any, names: str) -> None:
        assert names == "_js2py_traceDeltas"
        self.handler = handler

    def ack(self, edit_id: int) -> None:
        self.handler({"new": {"trace_edit_id": edit_id}})


def test_pacer_holds_draws_while_the_browser_is_behind() -> None:
    fig = _Figure()
    pacer = DrawPacer(fig, max_undrawn=2, max_hold_s=60)
    fig._last_trace_edit_id = 5
    assert pacer.ready() and pacer.drawn_rate() is None  # no browser yet: never held
    pacer.sent()
    fig.ack(1)
    assert not pacer.ready() and pacer.skipped == 1  # 4 updates still to draw
    fig.ack(3)
    assert pacer.ready()
    # each acknowledgement covers every edit up to its id: 3 edits drawn in the window
    assert pacer.drawn_rate() == pytest.approx(3 / 5.0)


def test_live_success_lines_keep_the_protected_one_on_top() -> None:
    from cblab.lab.dashboard import live_figure

    fig = live_figure(["protected", "unprotected"], "github")
    success = [t for t in fig.data if t.meta[0] == "success"]
    assert [t.meta[1] for t in success] == ["unprotected", "protected"]  # drawn last: on top
    assert success[0].line.dash == "dash" and success[1].line.width > success[0].line.width
    latency_axis = fig.layout.yaxis2
    assert 20 in latency_axis.tickvals and 50 in latency_axis.tickvals  # 30 ms readable


def test_pattern_series_stay_visible_when_they_overlap() -> None:
    from cblab.lab import RetrySpec, compare_retries

    fig = compare_retries(RetrySpec(duration=30, seed=1)).figure()
    styles = {(t.line.dash, t.line.width) for t in fig.data if t.name}
    assert len(styles) == 4  # every variant drawn differently


def test_a_latency_shown_in_ms_is_labelled_ms() -> None:
    frame = pd.DataFrame({"protected": [0.0229, 0.5]}, index=["latency_p50_s", "availability"])
    text = show_table(frame).data
    assert list(text.index) == ["latency_p50_ms", "availability"]
    assert text.loc["latency_p50_ms", "protected"] == "22.9 ms"


def test_report_links_on_this_machine_go_to_a_loopback_report_server(
        monkeypatch: Any, tmp_path: Path) -> None:
    """A report opened from the Jupyter server's /files/ route cannot open its own data
    links (403 "Blocking request from unknown origin"); on this machine the link goes to
    a read-only loopback server for the report's directory, which serves the data too."""
    import urllib.error
    import urllib.request

    reports = tmp_path / "reports"
    (reports / "run-data").mkdir(parents=True)
    report = reports / "run.html"
    report.write_text("<html><a href='run-data/events.csv'>events</a></html>")
    (reports / "run-data" / "events.csv").write_text("t,kind\n0.5,call\n")
    (tmp_path / "secret.txt").write_text("not served")
    monkeypatch.setattr(links, "_servers", lambda: [
        {"root_dir": str(tmp_path), "base_url": "/", "hostname": "127.0.0.1"}])
    url = links.report_url(report)
    assert url.startswith("http://127.0.0.1:") and url.endswith("/run.html")
    assert f'href="{url}"' in links.report_link_html(report)
    base = url.rsplit("/", 1)[0]
    with urllib.request.urlopen(base + "/run-data/events.csv", timeout=10) as response:
        assert response.read().decode() == "t,kind\n0.5,call\n"
    for refused in ("/../secret.txt", "/", "/run-data/"):  # nothing outside, no listing
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(base + refused, timeout=10)
        assert info.value.code == 404, refused
    foreign = urllib.request.Request(url, headers={"Host": "evil.example"})
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(foreign, timeout=10)
    assert info.value.code == 403
    assert links.report_url(report) == url  # one server per directory, reused
    monkeypatch.setattr(links, "_servers", lambda: [
        {"root_dir": str(tmp_path), "base_url": "/", "hostname": "0.0.0.0"}])
    assert links.report_url(report) == "/files/reports/run.html"  # a remote browser
    with urllib.request.urlopen(base + "/favicon.ico", timeout=10) as response:
        assert response.status == 204  # a browser tab asks; no 404 in its console


def test_config_table_shows_each_setting_with_its_unit() -> None:
    from cblab import CircuitBreakerConfig
    from cblab.lab.summaries import config_table

    config = {"failure_threshold": 3, "timeout": 1.5, "half_open_max_calls": 2,
              "success_threshold": 2}
    shown = config_table(config).data
    assert shown.set_index("setting").loc["timeout", "value"] == "1.5"
    assert shown.set_index("setting").loc["timeout", "unit"] == "s"
    whole = config_table(CircuitBreakerConfig(**config)).data.set_index("setting")
    assert whole.loc["failure_threshold", "value"] == "3"
    assert "policy" not in whole.index  # nested values are not a row of a flat table


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_pacer_spaces_updates_so_the_chart_takes_at_most_its_share_of_the_browser() -> None:
    fig, clock = _Figure(), _Clock()
    pacer = DrawPacer(fig, max_undrawn=3, max_hold_s=60, max_busy=0.5, clock=clock)
    assert pacer.draw_cost_s() is None
    fig._last_trace_edit_id = 1
    pacer.sent()  # nothing else in flight: a lone update, its acknowledgement times it
    clock.now += 0.2
    fig.ack(1)
    assert pacer.draw_cost_s() == pytest.approx(0.2)
    # 0.2 s of drawing per update at most half the time: the next one 0.4 s after this
    assert not pacer.ready() and pacer.next_due_s() == pytest.approx(0.2)
    clock.now += 0.19
    assert not pacer.ready()
    clock.now += 0.02
    assert pacer.ready() and pacer.next_due_s() == 0.0
    # updates sent while others were in flight say nothing about one redraw's cost
    fig._last_trace_edit_id = 2
    pacer.sent()
    fig._last_trace_edit_id = 3
    pacer.sent()
    clock.now += 1.0
    fig.ack(3)
    assert list(pacer.costs) == [pytest.approx(0.2)]
    with pytest.raises(ValueError, match="max_busy"):
        DrawPacer(fig, max_busy=0)


def test_a_failing_live_view_says_why_instead_of_never_drawing(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cblab.lab import LabParams, LiveLab

    lab = LiveLab(LabParams())
    assert "Starting the backend" in lab.status.value

    def broken() -> None:
        raise RuntimeError("no figure today")

    monkeypatch.setattr(lab, "_install_figure", broken)
    with pytest.raises(RuntimeError, match="no figure today"):
        asyncio.run(lab._view())
    assert "The live view failed: RuntimeError: no figure today" in lab.status.value
    assert lab.stop_button.disabled
    assert "no figure today" in capsys.readouterr().err  # the traceback, for the log console


def test_pacer_sends_nothing_before_an_expected_browser_drew_the_figure() -> None:
    fig, clock = _Figure(), _Clock()
    pacer = DrawPacer(fig, expect_frontend=True, first_draw_wait_s=30, clock=clock)
    assert not pacer.ready()  # plotly's view may still be in its first draw
    clock.now += 5
    fig.ack(0)  # the view's acknowledgement of its first draw (no edit yet)
    assert pacer.ready()
    # nobody drew within first_draw_wait_s: a headless run, draws go out
    late = DrawPacer(_Figure(), expect_frontend=True, first_draw_wait_s=30, clock=clock)
    assert not late.ready()
    clock.now += 30
    assert late.ready()
    assert DrawPacer(_Figure(), clock=clock).ready()  # no browser expected


def test_pacer_tells_a_blank_or_missing_first_draw_from_a_good_one() -> None:
    """The first acknowledgement carries one delta per trace the view drew: none when
    plotly's view drew the model's empty defaults (issue 19)."""
    clock = _Clock()

    def first_ack(deltas: int, traces: int = 4) -> DrawPacer:
        fig = _Figure()
        fig.data = [object()] * traces  # type: ignore[attr-defined]
        pacer = DrawPacer(fig, expect_frontend=True, first_draw_wait_s=30, clock=clock)
        fig.handler({"new": {"trace_edit_id": 0, "trace_deltas": [{}] * deltas}})
        return pacer

    assert first_ack(deltas=4).first_draw_failed() is None
    blank = first_ack(deltas=0)
    assert blank.first_draw_failed() == "blank"
    assert first_ack(deltas=0, traces=0).first_draw_failed() is None  # an empty figure
    # only the first draw tells: later acknowledgements do not clear or set it
    blank.figure.handler({"new": {"trace_edit_id": 1, "trace_deltas": [{}] * 4}})
    assert blank.first_draw_failed() == "blank"
    # an expected browser that draws nothing at all
    silent = DrawPacer(_Figure(), expect_frontend=True, first_draw_wait_s=30, clock=clock)
    assert silent.first_draw_failed() is None
    clock.now += 30
    assert silent.first_draw_failed() == "silent"
    headless = DrawPacer(_Figure(), first_draw_wait_s=30, clock=clock)
    clock.now += 30
    assert headless.first_draw_failed() is None  # no browser expected


def test_pacer_tells_a_view_that_stopped_drawing_updates() -> None:
    clock, fig = _Clock(), _Figure()
    pacer = DrawPacer(fig, expect_frontend=True, stall_s=30, max_hold_s=2, clock=clock)
    fig.ack(0)  # the first draw
    for _ in range(3):  # updates go out, each drawn within seconds
        fig._last_trace_edit_id += 1
        pacer.sent()
        clock.now += 20
        fig.ack(fig._last_trace_edit_id)
    clock.now += 300  # nothing sent: nothing to draw, nothing stalled
    assert pacer.first_draw_failed() is None
    fig._last_trace_edit_id += 1
    pacer.sent()
    clock.now += 10
    fig._last_trace_edit_id += 1
    pacer.sent()
    clock.now += 19  # 29 s since the oldest undrawn update
    assert pacer.first_draw_failed() is None
    fig.ack(fig._last_trace_edit_id - 1)  # it drew one: the next counts from now
    clock.now += 29
    assert pacer.first_draw_failed() is None
    clock.now += 1
    assert pacer.first_draw_failed() == "stalled"


def test_live_lab_shows_its_chart_anew_when_the_browser_drew_it_blank() -> None:
    """The lab side of issue 19: a chart whose view drew nothing of the figure (or took
    no update) is shown anew, a new view of the same widget, with a new pacer (the old
    one no longer listening); a good draw is kept; after three, the status line tells
    the person what to do."""
    from cblab.lab import LabParams, LiveLab

    lab = LiveLab(LabParams())
    lab._install_figure()
    fig, first_pacer = lab.figure, lab.pacer
    assert fig is not None and first_pacer is not None
    boxes: list[tuple[Any, ...]] = []
    lab._chart_box.observe(lambda change: boxes.append(change["new"]), names="children")

    def browser_draws(traces: int) -> None:
        # what plotly's view sends after its first draw: a delta per trace it holds
        deltas = [{"uid": t.uid, "index": i} for i, t in enumerate(fig.data[:traces])]
        fig._js2py_traceDeltas = {"trace_edit_id": fig._last_trace_edit_id,
                                  "trace_deltas": deltas}

    browser_draws(0)
    lab._check_first_draw()
    assert lab.chart_rebuilds == 1 and lab.figure is fig
    assert boxes == [(), (fig,)]  # taken off the page and shown again: a new view
    assert lab.pacer is not first_pacer and not lab.pacer.frontend_seen
    browser_draws(len(fig.data))  # the new view draws it whole
    assert lab.pacer.frontend_seen
    listening = fig._trait_notifiers["_js2py_traceDeltas"]["change"]
    assert lab.pacer._on_ack in listening and first_pacer._on_ack not in listening
    lab._check_first_draw()
    assert lab.chart_rebuilds == 1 and len(boxes) == 2  # kept
    # a browser that keeps failing: three times shown anew, then the person is told
    for _ in range(3):
        lab.pacer.blank_draw = True
        lab._check_first_draw()
    assert lab.chart_rebuilds == 3 and lab._chart_problem is not None
    lab.session.started_at = 0.0  # as if running: the status line shows the problem
    lab._refresh_status()
    assert "did not draw the chart" in lab.status.value


def test_the_live_chart_widget_opens_with_its_figure_and_class(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The browser's model is created from the comm_open's state: it must hold the
    traces, the layout and the chart's class (a FigureWidget sends them as updates
    after opening empty, which anywidget may apply after the first draw: issue 19)."""
    import ipywidgets
    import plotly.graph_objects as go

    from cblab.lab.dashboard import live_figure
    from cblab.lab.whole_widget import WholeFigureWidget

    opened: list[dict[str, Any]] = []
    real_open = ipywidgets.Widget.open

    def record_open(widget: Any) -> None:
        if isinstance(widget, go.FigureWidget):
            opened.append(widget.get_state())  # what the comm_open carries
        real_open(widget)

    monkeypatch.setattr(ipywidgets.Widget, "open", record_open)
    figure = live_figure(["protected"], "github")
    go.FigureWidget(figure)
    assert opened.pop()["_widget_data"] == []  # plotly's own: opened empty
    widget = WholeFigureWidget(figure, classes=("cblab-live-chart",))
    (state,) = opened
    assert len(state["_widget_data"]) == len(figure.data) > 0
    assert state["_widget_layout"]["height"] == figure.layout.height
    assert "cblab-live-chart" in state["_dom_classes"]
    assert widget.comm is not None
    with widget.batch_update():  # and it updates as any FigureWidget
        widget.data[0].x = [1.0]
    assert widget._last_trace_edit_id == 1
