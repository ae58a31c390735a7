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


def test_status_success_is_availability():
    import itertools

    import numpy as np

    from cblab.analysis import call_succeeded, succeeded
    from cblab.schema import CALL_OUTCOMES

    pairs = list(itertools.product(CALL_OUTCOMES, [None, float("nan"), "not_found", "http_500"]))
    outcomes, errors = zip(*pairs, strict=True)
    assert [call_succeeded(o, e) for o, e in pairs] == succeeded(outcomes, errors).tolist()
    rows = [event_row(kind="call", t=i * 0.1, source="load", variant="protected",
                      breaker="github", outcome=o, latency=0.01)
            for i, o in enumerate(["success", "slow", "rejected", "timeout", "failure",
                                   "success", "dropped"])]
    feed = LiveFeed(breaker="github")
    feed.add(rows)
    feed.advance(1.0)
    availability = run_kpis(feed.recorded_frame(), duration_s=1.0)["availability"]
    assert feed.summary()["protected"]["success_rate"] == availability == 3 / 7
    assert feed.recent_success(5.0)["protected"] == availability
    assert np.isclose(availability, 3 / 7)


def test_policy_comparison_counts_trips_and_failed_probes_apart():
    from cblab.lab.compare import compare_policies

    result = compare_policies(0.5, rate=50, duration=30, failure_threshold=2, timeout=1, seed=1)
    for row, spans in zip(result.summary.itertuples(), [result.spans[result.spans["policy"] == p]
                                                        for p in result.summary["policy"]],
                          strict=True):
        opens = int((spans["state"] == "open").sum())  # one open span per move to OPEN
        assert row.trips + row.probe_failures == opens, row.policy
        assert row.trips <= opens
    assert result.summary["probe_failures"].sum() > 0  # the case that used to be a "trip"
