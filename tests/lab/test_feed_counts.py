"""The live status line's counts are the report's: trips and failed probes apart."""

from __future__ import annotations

from cblab.analysis import run_kpis
from cblab.lab.feed import LiveFeed
from cblab.schema import event_row


def _change(t, left, entered):
    return event_row(kind="state", t=t, source="server", variant="protected",
                     breaker="github", state=left, state_after=entered, reason="test")


def _call(t, outcome, state):
    return event_row(kind="call", t=t, source="server", variant="protected", breaker="github",
                     tool="github_user", outcome=outcome, latency=0.01, state=state,
                     state_after=state)


def test_status_counts_agree_with_the_report():
    moves = [("closed", "open"), ("open", "half_open"), ("half_open", "open"),
             ("open", "half_open"), ("half_open", "open"), ("open", "half_open"),
             ("half_open", "closed"), ("closed", "open")]
    rows = []
    for i, (left, entered) in enumerate(moves):
        rows.append(_call(i + 0.5, "success" if left == "closed" else "rejected", left))
        rows.append(_change(i + 1.0, left, entered))
    feed = LiveFeed(breaker="github")
    feed.add(rows)
    summary = feed.summary()["protected"]
    assert (summary["trips"], summary["probe_failures"]) == (2, 2)  # 4 moves to OPEN
    figures = run_kpis(feed.recorded_frame(), duration_s=10.0)
    assert (figures["trips"], figures["probe_failures"]) == (2, 2)
