"""RetryPolicy's contract on a manual clock: the sleeps it asks for advance the clock,
nothing really sleeps. Attempts, jitter bounds, the deadline across attempts, the
budget, Retry-After, refusals, and one breaker record per attempt."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from cblab import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    ConfigError,
    ManualClock,
    Outcome,
)
from cblab.integrations.retry import (
    Judgement,
    RetryBudget,
    RetryPolicy,
    judge_exception,
    judge_tool_result,
    retry_after_header,
    should_retry,
)


class World:
    """A manual clock and a sleep that moves it, recording each wait."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.waits: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.clock.advance(seconds)

    def policy(self, attempts: int = 3, **options: Any) -> RetryPolicy:
        options.setdefault("rng", random.Random(7))
        return RetryPolicy(attempts, clock=self.clock, sleep=self.sleep, **options)


def failing(n_failures: int, *, cost: float = 0.0, clock: ManualClock | None = None,
            error: BaseException | None = None):
    """An attempt that raises `error` (a connect error) `n_failures` times, then answers."""
    calls = {"n": 0}

    async def attempt() -> str:
        calls["n"] += 1
        if clock is not None:
            clock.advance(cost)
        if calls["n"] <= n_failures:
            raise error or httpx.ConnectError("refused")
        return "ok"

    return attempt, calls


def dead_behind(breaker: CircuitBreaker):
    """An attempt through `breaker` at a dead dependency: refused, or one failure."""

    async def attempt() -> None:
        permit = breaker.admit()
        if not permit.admitted:
            raise CircuitOpenError(breaker.name, permit.retry_after, permit.state)
        breaker.record(permit, Outcome.FAILURE, error_type="ConnectError")
        raise httpx.ConnectError("refused")

    return attempt


def judge(result: Any, error: BaseException | None) -> Judgement:
    return judge_exception(error) if error is not None else Judgement("success")


async def test_a_failure_is_retried_until_the_attempts_run_out() -> None:
    world = World()
    attempt, calls = failing(10)
    policy = world.policy(4, budget_ratio=None)
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge)
    assert calls["n"] == 4 and len(world.waits) == 3
    assert policy.stats()["stopped"]["attempts"] == 1 and policy.stats()["retries"] == 3


async def test_success_after_failures_returns_the_answer() -> None:
    world = World()
    attempt, calls = failing(2)
    assert await world.policy(3).call(attempt, judge) == "ok"
    assert calls["n"] == 3


@pytest.mark.parametrize("seed", range(5))
async def test_full_jitter_stays_within_the_exponential_limit(seed: int) -> None:
    world = World()
    policy = world.policy(8, backoff=0.5, max_backoff=4.0, rng=random.Random(seed),
                          budget_ratio=None)
    attempt, _ = failing(100)
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge)
    limits = [min(4.0, 0.5 * 2 ** k) for k in range(7)]
    assert len(world.waits) == 7
    assert all(0.0 <= w <= limit for w, limit in zip(world.waits, limits, strict=True))
    assert len(set(world.waits)) == 7  # drawn, not fixed


async def test_full_jitter_spreads_over_the_whole_interval() -> None:
    policy = RetryPolicy(backoff=1.0, max_backoff=1.0, rng=random.Random(3))
    draws = [policy.delay(1) for _ in range(2000)]
    assert min(draws) < 0.05 and max(draws) > 0.95
    assert 0.45 < sum(draws) / len(draws) < 0.55  # uniform on [0, 1]: mean 1/2


async def test_without_jitter_every_caller_waits_the_same_schedule() -> None:
    world = World()
    attempt, _ = failing(100)
    with pytest.raises(httpx.ConnectError):
        await world.policy(4, backoff=0.1, jitter=False, budget_ratio=None).call(attempt, judge)
    assert world.waits == pytest.approx([0.1, 0.2, 0.4])


async def test_the_deadline_covers_every_attempt_and_wait() -> None:
    world = World()
    # each attempt takes 1 s of (virtual) time; waits are 1 s (no jitter)
    attempt, calls = failing(100, cost=1.0, clock=world.clock)
    policy = world.policy(50, backoff=1.0, max_backoff=1.0, jitter=False, deadline=4.5,
                          budget_ratio=None)
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge)
    # a1 0->1, wait ->2, a2 ->3, wait ->4, a3 ->5; a4 could start no sooner than 6 > 4.5
    assert calls["n"] == 3 and world.waits == [1.0, 1.0] and world.clock() == 5.0
    assert policy.stats()["stopped"]["deadline"] == 1


async def test_no_attempt_starts_once_the_deadline_has_passed() -> None:
    world = World()
    attempt, calls = failing(100, cost=3.0, clock=world.clock)
    policy = world.policy(50, backoff=0.0, deadline=2.0, budget_ratio=None)
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge)
    assert calls["n"] == 1  # the first attempt alone outlived the deadline


async def test_a_retry_after_past_the_deadline_stops_at_once() -> None:
    world = World()

    async def attempt() -> None:
        request = httpx.Request("GET", "http://dep/")
        response = httpx.Response(503, headers={"Retry-After": "30"}, request=request)
        raise httpx.HTTPStatusError("503", request=request, response=response)

    policy = world.policy(5, deadline=10.0, max_retry_after=60.0)
    with pytest.raises(httpx.HTTPStatusError):
        await policy.call(attempt, judge)
    assert world.waits == [] and policy.stats()["stopped"]["deadline"] == 1


async def test_retry_after_sets_the_least_wait() -> None:
    world = World()
    answers = iter([429, 200])

    async def attempt() -> int:
        return next(answers)

    def by_status(result: Any, error: BaseException | None) -> Judgement:
        return Judgement("failure", 2.5) if result == 429 else Judgement("success")

    assert await world.policy(3, backoff=0.1).call(attempt, by_status) == 200
    assert world.waits == [2.5]


async def test_a_retry_after_longer_than_max_retry_after_is_not_waited_for() -> None:
    world = World()

    async def attempt() -> int:
        return 429

    def slow_down(result: Any, error: BaseException | None) -> Judgement:
        return Judgement("failure", 120.0)

    assert await world.policy(3, max_retry_after=10.0).call(attempt, slow_down) == 429
    assert world.waits == []


def test_retry_after_header_forms() -> None:
    assert retry_after_header("7") == 7.0
    assert retry_after_header("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after_header("soon") is None and retry_after_header(None) is None


async def test_a_breaker_refusal_is_never_retried() -> None:
    world = World()
    attempt, calls = failing(5, error=CircuitOpenError("dep", 12.0))
    policy = world.policy(5)
    with pytest.raises(CircuitOpenError):
        await policy.call(attempt, judge)
    assert calls["n"] == 1 and world.waits == []
    assert policy.stats()["stopped"]["refused"] == 1


@pytest.mark.parametrize("code", ["dependency_unavailable", "local_overload"])
def test_refusal_results_are_final(code: str) -> None:
    from types import SimpleNamespace

    result = SimpleNamespace(is_error=True,
                             structured_content={"error": code, "retry_after_s": 3.0})
    assert judge_tool_result(result).reason == "refused"
    assert judge_tool_result(result, count_errors=True).reason == "refused"


def test_only_counted_failures_are_retryable() -> None:
    assert should_retry(httpx.ConnectError("x")) and should_retry(TimeoutError())
    assert not should_retry(CircuitOpenError("dep", 1.0))
    from fastmcp.exceptions import ToolError
    assert not should_retry(ToolError("no results"))  # raised on purpose: final
    wrapped = ToolError("boom")
    wrapped.__cause__ = CircuitOpenError("inner", 1.0)
    assert not should_retry(wrapped)


def test_the_budget_bounds_retries_by_calls() -> None:
    budget = RetryBudget(ratio=0.1, burst=5)
    granted = 0
    for _ in range(1000):  # every call fails and wants 3 retries
        budget.deposit()
        granted += sum(budget.withdraw() for _ in range(3))
    assert granted <= 5 + 0.1 * 1000
    assert granted >= 0.1 * 1000 - 1  # and it does allow its share
    assert budget.denied > 0


async def test_an_exhausted_budget_stops_retries_for_every_call_on_that_breaker() -> None:
    world = World()
    policy = world.policy(4, budget_ratio=0.0, budget_burst=2, max_streak=None)
    for _ in range(3):
        attempt, _ = failing(100)
        with pytest.raises(httpx.ConnectError):
            await policy.call(attempt, judge, key="dep")
    stats = policy.stats()
    assert stats["retries"] == 2 and stats["stopped"]["budget"] == 3
    other, calls = failing(1)
    assert await policy.call(other, judge, key="other-dep") == "ok"  # its own budget
    assert calls["n"] == 2


def test_the_budget_refuses_retries_once_calls_fail_in_a_row() -> None:
    budget = RetryBudget(ratio=1.0, burst=10, max_streak=2)
    budget.record(False)  # a call failed: an isolated failure may be retried
    assert budget.withdraw()
    budget.record(False, retry=True)  # its retry failed: still one call in the streak
    assert budget.withdraw() and budget.streak == 1
    budget.record(False)  # a second call failed: an outage, not a blip
    assert not budget.withdraw() and budget.denied_streak == 1
    budget.record(True, retry=True)  # any success ends the streak
    assert budget.withdraw() and budget.streak == 0
    assert RetryBudget(1.0, 10, max_streak=None).streak_blocks is False


async def test_no_retry_once_calls_fail_in_a_row_until_one_succeeds() -> None:
    world = World()
    policy = world.policy(3, budget_ratio=1.0, max_streak=2)
    alone, calls = failing(100)
    with pytest.raises(httpx.ConnectError):
        await policy.call(alone, judge, key="dep")
    assert calls["n"] == 3  # a lone caller's own failures do not stop its retries
    for n_failures in (100, 1):  # the call before failed too: no retry
        attempt, calls = failing(n_failures)
        with pytest.raises(httpx.ConnectError):
            await policy.call(attempt, judge, key="dep")
        assert calls["n"] == 1
    assert policy.stats()["stopped"]["streak"] == 2
    assert policy.stats()["budgets"]["dep"]["denied_streak"] == 2
    ok, _ = failing(0)
    assert await policy.call(ok, judge, key="dep") == "ok"  # a success ends the streak
    blip, calls = failing(1)
    assert await policy.call(blip, judge, key="dep") == "ok" and calls["n"] == 2
    other, calls = failing(1)
    assert await policy.call(other, judge, key="other-dep") == "ok"  # its own streak


async def test_a_retry_does_not_go_out_if_another_call_failed_while_it_waited() -> None:
    world = World()
    policy = world.policy(3, budget_ratio=1.0, budget_burst=5)
    meanwhile: list[bool] = [False]  # another call through "dep" fails during the wait

    async def sleep(seconds: float) -> None:
        await world.sleep(seconds)
        for ok in meanwhile:
            policy.budget("dep").record(ok)

    policy.sleep = sleep
    attempt, calls = failing(100)
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge, key="dep")
    # granted (one call had failed), then re-checked after the backoff: two had
    assert calls["n"] == 1 and len(world.waits) == 1
    assert policy.stats()["stopped"]["streak"] == 1
    assert policy.budget("dep").tokens == 5  # the token came back
    policy.budget("dep").record(True)  # a success ends the streak
    meanwhile[:] = [True]  # and another call succeeds during the wait: the retry goes
    attempt, calls = failing(1)
    assert await policy.call(attempt, judge, key="dep") == "ok" and calls["n"] == 2


async def test_a_breaker_that_opened_during_the_backoff_stops_the_retry() -> None:
    world = World()
    opened = {"now": False}

    async def sleep(seconds: float) -> None:
        await world.sleep(seconds)
        opened["now"] = True

    policy = RetryPolicy(3, clock=world.clock, sleep=sleep, rng=random.Random(1))
    attempt, calls = failing(100)
    with pytest.raises(httpx.ConnectError):  # the failure, not a refusal
        await policy.call(attempt, judge, key="dep", breaker_open=lambda: opened["now"])
    assert calls["n"] == 1 and policy.stats()["stopped"]["breaker_open"] == 1


async def test_no_retry_joins_a_breakers_count_of_consecutive_failures_from_other_calls(
) -> None:
    world = World()
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=5, timeout=30),
                             clock=world.clock)

    attempt = dead_behind(breaker)
    policy = world.policy(3, budget_ratio=1.0)  # the default streak: 2
    for _ in range(2):
        with pytest.raises(httpx.ConnectError):
            await policy.call(attempt, judge, key="dep",
                              breaker_open=lambda: breaker.state.value == "open")
    # the first call's three attempts, the second call's one: no retry was sent while the
    # breaker counted another call's failures (without the streak: 3 + 2, and it trips)
    assert breaker.get_status()["calls"] == 4 and breaker.state.value == "closed"
    assert policy.stats()["stopped"] == {**dict.fromkeys(policy.stats()["stopped"], 0),
                                         "attempts": 1, "streak": 1}


async def test_each_attempt_is_one_breaker_record_and_an_open_breaker_ends_retries() -> None:
    world = World()
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(failure_threshold=3, timeout=30),
                             clock=world.clock)

    attempt = dead_behind(breaker)
    policy = world.policy(10, budget_ratio=None)
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge, key="dep",
                          breaker_open=lambda: breaker.state.value == "open")
    assert breaker.get_status()["calls"] == 3 and breaker.state.value == "open"
    assert policy.stats()["stopped"]["breaker_open"] == 1  # the 4th would only be refused


@pytest.mark.parametrize("bad", [
    {"attempts": 0}, {"attempts": 1.5}, {"backoff": -1}, {"deadline": 0},
    {"budget_ratio": float("nan")}, {"jitter": "yes"}, {"max_retry_after": -2},
    {"max_streak": 1}, {"max_streak": 0}, {"max_streak": 2.0}, {"max_streak": True},
])
def test_bad_options_are_refused_naming_the_field(bad: dict[str, Any]) -> None:
    field = next(iter(bad))
    with pytest.raises(ConfigError, match=field):
        RetryPolicy(**bad)


@pytest.mark.parametrize("seed", range(10))
async def test_a_jittered_wait_never_runs_past_the_deadline(seed: int) -> None:
    world = World()
    attempt, calls = failing(100, cost=0.3, clock=world.clock)
    policy = world.policy(50, backoff=1.0, max_backoff=1.0, deadline=2.0, budget_ratio=None,
                          rng=random.Random(seed))
    with pytest.raises(httpx.ConnectError):
        await policy.call(attempt, judge)
    # every attempt started before the deadline, and no wait ended after it
    assert world.clock() - 0.3 < 2.0
    assert policy.stats()["attempts"] == calls["n"]
