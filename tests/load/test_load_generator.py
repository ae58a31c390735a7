"""The open-loop load generator against a live server over Streamable HTTP."""

from __future__ import annotations

import asyncio

import pytest

from cblab.load import LoadGenerator
from cblab.schema import CALL_OUTCOMES, EVENT_COLUMNS
from tests.server.live import Live, eventually


def assert_one_record_per_arrival(gen: LoadGenerator) -> None:
    rows = gen.records()
    assert sorted(r["seq"] for r in rows) == list(range(1, gen.sent + 1))
    assert gen.completed == gen.sent == sum(gen.counts.values())
    assert all(r["outcome"] in CALL_OUTCOMES for r in rows)


async def test_constant_rate_count_run_records_every_call(live: Live) -> None:
    gen = LoadGenerator(live.mcp_url, "github_user", rate=40, arrivals="constant", seed=3,
                        variant="protected", keep_all=True)
    await gen.run(count=20)
    assert_one_record_per_arrival(gen)
    assert gen.counts == {"success": 20}
    rows = gen.records()
    assert {r["source"] for r in rows} == {"load"}
    assert {r["breaker"] for r in rows} == {"github"}
    ts = sorted(r["t"] for r in rows)
    assert ts == pytest.approx([i / 40 for i in range(20)])  # intended starts, not actual
    assert all(r["latency"] > 0 for r in rows)

    frame = gen.to_frame()
    assert tuple(frame.columns) == EVENT_COLUMNS
    assert list(frame["seq"]) == list(range(1, 21))

    # the server saw the same calls, in one gap-free sequence
    server_rows = [r for r in live.rows() if r["kind"] == "call"]
    assert len(server_rows) == 20
    assert [r["seq"] for r in live.rows()] == list(range(1, len(live.rows()) + 1))


async def test_poisson_arrivals_are_reproducible_from_the_seed(live: Live) -> None:
    runs = []
    for _ in range(2):
        gen = LoadGenerator(live.mcp, "circuit_status", rate=200, seed=11, keep_all=True)
        await gen.run(count=15)
        runs.append(sorted(r["t"] for r in gen.records()))
    assert runs[0] == runs[1]
    assert runs[0][0] > 0  # Poisson: the first arrival comes after a random gap


async def test_over_the_in_flight_cap_calls_are_dropped(live: Live) -> None:
    await live.backend.set_profile("users", {"mode": "hang"})
    gen = LoadGenerator(live.mcp_url, "github_user", rate=100, arrivals="constant",
                        max_in_flight=2, deadline=0.5, keep_all=True)
    await gen.run(count=8)
    assert_one_record_per_arrival(gen)
    assert gen.counts["dropped"] >= 4
    assert gen.max_seen_in_flight == 2
    dropped = [r for r in gen.records() if r["outcome"] == "dropped"]
    assert all(r["latency"] is None and r["error_type"] == "in_flight_cap" for r in dropped)


async def test_client_deadline_gives_timeouts(live_factory) -> None:
    live = await live_factory(deadline=5.0)
    await live.backend.set_profile("users", {"mode": "hang"})
    gen = LoadGenerator(live.mcp_url, "github_user", rate=50, arrivals="constant",
                        deadline=0.2, keep_all=True)
    await gen.run(count=3)
    assert gen.counts == {"timeout": 3}
    assert all(0.2 <= r["latency"] < 2.0 for r in gen.records())
    # the server learns the client left: those calls end as cancelled, not successes
    await eventually(lambda: sum(r["kind"] == "call" for r in live.rows()) == 3,
                     what="three server call rows")
    assert {r["outcome"] for r in live.rows() if r["kind"] == "call"} == {"cancelled"}


async def test_rejections_and_failures_are_told_apart(live: Live) -> None:
    await live.backend.set_profile("users", {"mode": "down"})
    gen = LoadGenerator(live.mcp_url, "github_user", rate=20, arrivals="constant",
                        keep_all=True)
    await gen.run(count=8)
    assert_one_record_per_arrival(gen)
    assert set(gen.counts) == {"failure", "rejected"}
    assert gen.counts["failure"] >= 3
    rejected = [r for r in gen.records() if r["outcome"] == "rejected"]
    assert {r["error_type"] for r in rejected} == {"dependency_unavailable"}
    # the server agrees, call for call
    server = [r["outcome"] for r in live.rows() if r["kind"] == "call"]
    assert sorted(server) == sorted(r["outcome"] for r in gen.records())


async def test_rate_change_and_stop_while_running(live: Live) -> None:
    gen = LoadGenerator(live.mcp, "circuit_status", rate=0, arrivals="constant")
    task = asyncio.create_task(gen.run(duration=30))
    await asyncio.sleep(0)  # let the run start: at rate 0 nothing is sent
    assert gen.sent == 0
    gen.rate = 100
    await eventually(lambda: gen.completed >= 10, what="ten calls")
    gen.stop()
    await asyncio.wait_for(task, 5)
    assert_one_record_per_arrival(gen)
    assert not gen.running


async def test_stream_window_and_callback(live: Live) -> None:
    seen: list[dict] = []
    gen = LoadGenerator(live.mcp, "circuit_status", rate=200, arrivals="constant", window=5,
                        on_result=seen.append)
    streamed: list[dict] = []

    async def consume() -> None:
        async for row in gen.stream():
            streamed.append(row)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    await gen.run(count=12)
    await asyncio.wait_for(consumer, 5)
    assert len(seen) == len(streamed) == 12
    assert len(gen.records()) == 5  # bounded window
    rows, cursor, missed = gen.since(0)
    assert (len(rows), cursor, missed) == (5, 12, 7)
    assert gen.since(cursor) == ([], 12, 0)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="arrivals"):
        LoadGenerator("http://127.0.0.1:1/mcp", arrivals="bursty")
    with pytest.raises(ValueError, match="rate"):
        LoadGenerator("http://127.0.0.1:1/mcp", rate=-1)
    with pytest.raises(ValueError, match="max_in_flight"):
        LoadGenerator("http://127.0.0.1:1/mcp", max_in_flight=0)
    gen = LoadGenerator("http://127.0.0.1:1/mcp")
    with pytest.raises(ValueError, match="rate"):
        gen.rate = float("nan")


async def test_bulkhead_refusals_are_recorded_as_the_server_records_them(live_factory) -> None:
    # 2 slots and at most 2 waiting: 8 calls sent within 40 ms, while the first two hold
    # their slots for their 2 s deadline (the backend takes 4 s): however slowly a busy
    # machine delivers the 8 to the server, they all arrive while both slots are held, so
    # at least 4 are refused at once (the verdict is counted, not raced)
    live = await live_factory(max_connections=2, deadline=2.0)
    await live.backend.set_profile("users", {"latency": {"kind": "constant", "ms": 4000}})
    gen = LoadGenerator(live.mcp_url, "github_user", rate=200, arrivals="constant",
                        deadline=10.0, keep_all=True)
    await gen.run(count=8)
    assert_one_record_per_arrival(gen)
    shed = [r for r in gen.records() if r["error_type"] == "local_overload"]
    assert len(shed) >= 4, gen.counts
    assert {(r["outcome"], r["breaker"]) for r in shed} == {("dropped", "github")}
    server = [r for r in live.rows() if r["kind"] == "call" and r["error_type"] == "local_overload"]
    assert len(server) == len(shed)
