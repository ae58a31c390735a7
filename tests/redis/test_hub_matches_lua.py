"""`SharedHub` (the simulator's shared store) answers exactly as the Lua scripts do.

The same random operations, at the same times, go to Redis (client_time=True, so
the scripts use the caller's clock) and to a hub on a manual clock; every reply
(result, snapshot, moves) must be equal.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cblab import CircuitBreakerConfig, CumulativeFailures, ManualClock
from cblab.stores import RedisStore, SharedHub

_names = itertools.count()

_op = st.one_of(
    st.tuples(st.just("admit")),
    st.tuples(st.just("record"), st.sampled_from(["success", "failure", "release"]),
              st.integers(-1, 0), st.integers(0, 3)),
    st.tuples(st.just("control"), st.sampled_from(
        ["force_open", "force_closed", "disable", "reset", "reconfigure", "read"])),
    st.tuples(st.just("advance"), st.sampled_from([0.3, 2.0, 7.0])),
    st.tuples(st.just("window"), st.integers(-1, 0), st.text("osfx", min_size=1, max_size=4)),
)


@pytest.fixture(scope="module")
def store(redis_server):
    store = RedisStore(redis_server.url, namespace="hub-vs-lua", client_time=True,
                       op_timeout=2.0).connect_sync()
    yield store
    store.close_sync()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=st.lists(_op, max_size=40), cumulative=st.booleans(),
       kind=st.sampled_from(["count", "time"]))
def test_the_hub_and_the_scripts_agree(store, ops, cumulative, kind):
    config = CircuitBreakerConfig(
        failure_threshold=2, success_threshold=2, half_open_max_calls=2, timeout=5,
        max_trial_duration=6, backoff_multiplier=2, max_timeout=20,
        **({"policy": CumulativeFailures()} if cumulative else {}),
    )
    clock = ManualClock(1000.0)
    hub = SharedHub(clock)
    name = f"diff-{next(_names)}"
    generation = 0
    for op in ops:
        if op[0] == "advance":
            clock.advance(op[1])
            continue
        if op[0] == "admit":
            args: list = []
            got = store._run("admit", name, config, args, clock())
            want = hub.admit(name, config)
        elif op[0] == "record":
            _, outcome, stale, trial = op
            args = [outcome, generation + stale, trial, ""]
            got = store._run("record", name, config, args, clock())
            want = hub.record(name, config, outcome, generation + stale, trial, "")
        elif op[0] == "window":
            _, stale, outcomes = op
            failures = sum(c in "fx" for c in outcomes)
            slow = sum(c in "sx" for c in outcomes)
            args = [generation + stale, kind, len(outcomes), failures, slow, outcomes,
                    5 if kind == "count" else 10_000_000, 2_000_000, 3, "0.5", "0.75"]
            got = store._run("window", name, config, args, clock())
            want = hub.window(name, config, *args)
        else:
            got = store._run("control", name, config, [op[1], "by hand"], clock())
            want = hub.control(name, config, op[1], "by hand")
        assert got == want, op
        generation = got.snapshot.generation


def test_restore_agrees_and_never_lowers_the_generation(store):
    config = CircuitBreakerConfig(failure_threshold=1, timeout=5)
    clock = ManualClock(1000.0)
    hub = SharedHub(clock)
    name = f"restore-{next(_names)}"
    for gen, state in ((4, "open"), (2, "closed"), (7, "half_open")):
        args = ["restore", "by hand", gen, state, "normal", 1, 999_000_000, 5_000_000]
        got = store._run("control", name, config, args, clock())
        want = hub.control(name, config, *args)
        assert got == want
        clock.advance(1.0)
    assert (got.snapshot.generation, got.snapshot.state) == (7, "half_open")
    assert got.snapshot.reason == "by hand"
