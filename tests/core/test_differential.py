"""`await breaker.call()` and `admit()`/`record()` are the same breaker.

One random script (calls started and finished in any order with any outcome,
clock moves, manual actions) drives two breakers: one through `call()` (its
inline CLOSED fast path included), one through `admit()`/`record()`. Their
event logs and statuses must be identical.
"""

from __future__ import annotations

import asyncio
import contextlib

from hypothesis import example, given, settings
from hypothesis import strategies as st

from cblab import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    ConsecutiveFailures,
    CountWindow,
    CumulativeFailures,
    ManualClock,
    TimeWindow,
)


class Boom(Exception):
    pass


class NotFound(Exception):
    pass


OUTCOMES = ["success", "failure", "excluded", "cancelled"]
ERRORS = {"failure": Boom, "excluded": NotFound}

steps = st.lists(
    st.one_of(
        # a call that starts and ends at once (the common case) ...
        st.tuples(st.just("call"), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("call"), st.sampled_from(OUTCOMES)),
        # ... and calls that overlap, ending in any order
        st.tuples(st.just("start"), st.sampled_from(OUTCOMES)),
        st.tuples(st.just("finish"), st.integers(0, 7)),
        st.tuples(st.just("advance"), st.sampled_from([0.1, 0.6, 2.0, 7.0])),
        st.tuples(
            st.just("manual"), st.sampled_from(["force_open", "force_closed", "disable", "reset"])
        ),
    ),
    max_size=60,
)


def expand(script):
    """`call` is `start` then `finish` of that same call."""
    for kind, arg in script:
        if kind == "call":
            yield "start", arg
            yield "finish", -1
        else:
            yield kind, arg


policies = st.sampled_from(
    [
        ConsecutiveFailures(),
        CumulativeFailures(),
        CountWindow(size=6, minimum_calls=3, slow_call_duration=1.0, slow_call_rate_threshold=0.5),
        TimeWindow(window=5, buckets=5, minimum_calls=2, failure_rate_threshold=0.5),
    ]
)


def make(config, listen):
    clock = ManualClock(50.0)
    seen = []
    listeners = [seen.append] if listen else []
    return CircuitBreaker("dep", config, clock=clock, listeners=listeners), clock


def observe(breaker):
    status = breaker.get_status()
    status.pop("last_failure")  # wall-clock time
    return [e.to_dict() for _, e in breaker.event_log.since().events], status


def run_with_record(config, listen, script):
    breaker, clock = make(config, listen)
    in_flight = []
    for kind, arg in expand(script):
        if kind == "start":
            permit = breaker.admit()
            if permit.admitted:
                in_flight.append((permit, arg))
        elif kind == "finish" and in_flight:
            permit, outcome = in_flight.pop(arg % len(in_flight))
            if outcome == "success":
                breaker.record(permit, "success")
            elif outcome == "cancelled":
                breaker.record(permit, "cancelled", error_type="CancelledError")
            else:
                breaker.record_exception(permit, ERRORS[outcome]())
        elif kind == "advance":
            clock.advance(arg)
        elif kind == "manual":
            getattr(breaker, arg)()
    return observe(breaker)


async def run_with_call(config, listen, script):
    breaker, clock = make(config, listen)
    in_flight = []

    async def settle(task):
        with contextlib.suppress(BaseException):
            await task

    for kind, arg in expand(script):
        if kind == "start":
            gate = asyncio.get_running_loop().create_future()

            async def work(gate=gate):
                return await gate

            task = asyncio.ensure_future(breaker.call(work))
            await asyncio.sleep(0)  # the call admits (or is refused) and waits on its gate
            if task.done():
                assert isinstance(task.exception(), CircuitOpenError)
            else:
                in_flight.append((task, gate, arg))
        elif kind == "finish" and in_flight:
            task, gate, outcome = in_flight.pop(arg % len(in_flight))
            if outcome == "success":
                gate.set_result("ok")
            elif outcome == "cancelled":
                task.cancel()
            else:
                gate.set_exception(ERRORS[outcome]())
            await settle(task)
        elif kind == "advance":
            clock.advance(arg)
        elif kind == "manual":
            getattr(breaker, arg)()
    for task, _, _ in in_flight:  # never finished: leave them unrecorded on both sides
        task.cancel()
    observed = observe(breaker)
    for task, _, _ in in_flight:
        await settle(task)
    return observed


@settings(max_examples=400, deadline=None)
@example(  # a success between failures resets the consecutive count on both paths
    script=[("call", "failure"), ("call", "success"), ("call", "failure")],
    policy=ConsecutiveFailures(),
    threshold=2,
    half_open=1,
    listen=False,
)
@example(  # trip, wait, trial calls overlapping, one cancelled
    script=[
        ("call", "failure"),
        ("advance", 7.0),
        ("start", "cancelled"),
        ("start", "success"),
        ("finish", 0),
        ("start", "success"),
        ("finish", 0),
        ("finish", 0),
        ("call", "success"),
    ],
    policy=ConsecutiveFailures(),
    threshold=1,
    half_open=2,
    listen=False,
)
@given(
    script=steps,
    policy=policies,
    threshold=st.integers(1, 3),
    half_open=st.integers(1, 3),
    listen=st.booleans(),
)
def test_call_and_admit_record_give_identical_logs_and_statuses(
    script, policy, threshold, half_open, listen
):
    config = CircuitBreakerConfig(
        failure_threshold=threshold,
        success_threshold=1,
        half_open_max_calls=half_open,
        timeout=3.0,
        max_trial_duration=5.0,
        backoff_multiplier=2.0,
        max_timeout=12.0,
        policy=policy,
        excluded_exceptions=(NotFound,),
    )
    via_call = asyncio.run(run_with_call(config, listen, script))
    via_record = run_with_record(config, listen, script)
    assert via_call == via_record
