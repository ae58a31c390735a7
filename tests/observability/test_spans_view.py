"""Notebook 06's click-to-trace view (`cblab.lab.spans_view`): a press runs five traced
calls against its live weather server (127.0.0.1, Streamable HTTP) in a background task,
and the table shows their CLIENT spans; checked against the spans the SDK exported."""

from __future__ import annotations

import time
from html.parser import HTMLParser

import pytest

from cblab.lab.spans_view import COLUMNS, SpansView, spans_table_html

from .conftest import Otel

pytest.importorskip("ipywidgets")


class _Cells(HTMLParser):
    """The table's header and body cells, as text."""

    def __init__(self) -> None:
        super().__init__()
        self.head: list[str] = []
        self.rows: list[list[str]] = []
        self._cell: str | None = None

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            (self.head if tag == "th" else self.rows[-1]).append(self._cell)
            self._cell = None


def table(view: SpansView) -> list[dict[str, str]]:
    parsed = _Cells()
    parsed.feed(view.table.value)
    assert parsed.head == list(COLUMNS)
    return [dict(zip(parsed.head, row, strict=True)) for row in parsed.rows if row]


async def press(view: SpansView) -> float:
    """Click the button as the browser does; the press returns at once, the calls run
    in a background task. Returns the task's wall time."""
    start = time.perf_counter()
    view.button.click()
    task = view.task
    assert task is not None and not task.done()  # the click did not wait for the calls
    assert view.button.disabled
    view.button.click()  # a second press while tracing is ignored
    assert view.task is task
    await task
    assert not view.button.disabled
    return time.perf_counter() - start


async def test_a_press_traces_five_live_calls_and_shows_their_spans(otel: Otel) -> None:
    view = SpansView()
    try:
        assert view.table.value == "" and view.task is None  # nothing ran at display
        elapsed = await press(view)
        shown = table(view)
        assert [(r["breaker"], r["state at admission"], r["outcome"], r["error.type"])
                for r in shown] == [("traced/forecast", "closed", "success", "")] * 5
        assert "5 CLIENT spans in 5 traces" in view.status.value

        # the durations, from the spans the SDK exported (same span ids, in order)
        exported = [s for s in otel.finished() if s.kind.name == "CLIENT"
                    and (s.attributes or {}).get("resilience.circuit_breaker.name")
                    == "traced/forecast"]
        assert len(exported) == 5
        expected = [(s.end_time - s.start_time) / 1e6 for s in exported]
        assert [float(r["duration (ms)"]) for r in shown] == [
            pytest.approx(ms, abs=0.051) for ms in expected]
        assert 0 < sum(expected) < elapsed * 1e3

        view.down.value = True  # the weather service goes down: the guard trips
        await press(view)
        shown = table(view)
        assert [(r["state at admission"], r["outcome"], r["error.type"], r["state change"])
                for r in shown] == [
            ("closed", "failure", "error_result", ""),
            ("closed", "failure", "error_result", ""),
            ("closed", "failure", "error_result", "closed->open"),
            ("open", "rejected", "circuit_open", ""),
            ("open", "rejected", "circuit_open", "")]
    finally:
        await view.close()


async def test_a_failed_trace_says_why_and_frees_the_button(otel: Otel) -> None:
    view = SpansView(url="http://127.0.0.1:9/mcp", calls=2)  # nothing listens on port 9
    await press(view)
    assert view.task is not None and view.task.result() == []
    assert "Tracing failed" in view.status.value
    assert view.table.value == ""


def test_cells_are_escaped_and_missing_values_blank() -> None:
    html = spans_table_html([{"span": "<b>x</b>", "breaker": None, "duration_ms": 1.26}])
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x" not in html
    assert "<td>1.3</td>" in html and "None" not in html


@pytest.mark.parametrize("bad", [0, 101, True, 2.0])
def test_bad_calls_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match=r"calls must be an integer in 1\.\.100"):
        SpansView(calls=bad)  # type: ignore[arg-type]
