"""What a caller waited for a refusal vs what the breaker took, and the report's
caption that says which part is queueing."""

from __future__ import annotations

import math

import pytest

from cblab.analysis import refusal_waits
from cblab.report.figures import refusal_caption
from cblab.runs import load_run
from cblab.schema import event_row

from .test_kpi_definitions import SHIPPED


def _rows(caller_waits, breaker_waits, variant="protected"):
    rows = [event_row(kind="call", t=i, source="load", variant=variant, outcome="rejected",
                      latency=w) for i, w in enumerate(caller_waits)]
    rows += [event_row(kind="call", t=i, source="server", variant=variant, outcome="rejected",
                       latency=w) for i, w in enumerate(breaker_waits)]
    rows.append(event_row(kind="call", t=9, source="load", variant=variant, outcome="success",
                          latency=5.0))  # not a refusal: ignored
    return rows


def test_waits_by_hand():
    (row,) = refusal_waits(_rows([1.0, 1.2, 1.4, 2.0], [0.0001, 0.0002, 0.0003])).itertuples()
    assert row.refusals == 4
    assert row.caller_p50_s == pytest.approx(1.3)
    assert row.breaker_p50_s == pytest.approx(0.0002)
    assert row.outside_share == pytest.approx(1 - 0.0002 / 1.3)


def test_the_caption_names_queueing_only_when_it_is_most_of_the_wait():
    slow = refusal_caption(_rows([1.0, 1.2, 1.4], [0.0001, 0.0002, 0.0003]))
    assert "median 0.2 ms" in slow and "median 1.20 s" in slow and "queueing" in slow
    fast = refusal_caption(_rows([0.002, 0.003, 0.004], [0.0001, 0.0002, 0.0003]))
    assert "queueing" not in fast and "fail fast" in fast
    assert refusal_caption(_rows([], [])) == ""
    caller_only = refusal_waits([r for r in _rows([0.5], []) if r["source"] == "load"])
    assert math.isnan(caller_only["breaker_p50_s"].iloc[0])


def test_on_a_shipped_recording():
    events = load_run(SHIPPED / "hang-protected").events
    (row,) = refusal_waits(events).itertuples()
    refused = events[(events["kind"] == "call") & (events["outcome"] == "rejected")]
    load = sorted(refused[refused["source"] == "load"]["latency"])
    server = sorted(refused[refused["source"] == "server"]["latency"])
    assert row.refusals == len(load) > 0
    mid = len(load) // 2
    median = load[mid] if len(load) % 2 else (load[mid - 1] + load[mid]) / 2
    assert row.caller_p50_s == pytest.approx(median)
    assert row.breaker_p50_s <= server[-1] and row.breaker_p50_s < row.caller_p50_s
