"""A shared breaker behind the FastMCP middleware: the first call after the open timeout
is a half-open trial, not a refusal while the trial lease is fetched from Redis
(issue 20: "stale rejections")."""

from __future__ import annotations

from fastmcp import Client, FastMCP
from fastmcp.exceptions import ToolError

from cblab import BreakerRegistry, ManualClock
from cblab.integrations import CircuitBreakerMiddleware
from cblab.stores import RedisStore


async def test_the_first_call_after_the_timeout_is_a_trial(redis_url, namespace):
    clock = ManualClock(100.0)
    healthy = {"now": False}
    mcp = FastMCP("trials")

    @mcp.tool
    def lookup() -> str:
        if not healthy["now"]:
            raise ToolError("down") from ConnectionError("refused")
        return "ok"

    async with RedisStore(redis_url, namespace=namespace, client_time=True,
                          op_timeout=2.0) as store:
        registry = BreakerRegistry(clock=clock, store=store)
        mcp.add_middleware(CircuitBreakerMiddleware(
            registry=registry, clock=clock,
            config={"failure_threshold": 2, "timeout": 30, "half_open_max_calls": 1,
                    "success_threshold": 1}))
        async with Client(mcp) as client:
            for _ in range(2):
                assert (await client.call_tool("lookup", {}, raise_on_error=False)).is_error
            await store.drain()
            breaker = registry["lookup"]
            assert breaker.state.value == "open"
            clock.advance(31)
            healthy["now"] = True
            result = await client.call_tool("lookup", {}, raise_on_error=False)
            assert not result.is_error, result.content
            assert breaker.state.value == "closed" and breaker.rejected == 0


async def test_admit_async_is_admit_with_the_memory_store():
    from cblab import CircuitBreaker, CircuitBreakerConfig, Outcome

    clock = ManualClock(0.0)
    config = CircuitBreakerConfig(failure_threshold=1, timeout=10, half_open_max_calls=1,
                                  success_threshold=1)
    breaker = CircuitBreaker("dep", config, clock=clock)
    breaker.record(await breaker.admit_async(), Outcome.FAILURE)
    assert not (await breaker.admit_async()).admitted  # open
    clock.advance(10)
    trial = await breaker.admit_async()
    assert trial.admitted and trial.trial  # the half-open trial
    assert not (await breaker.admit_async()).admitted  # its one slot is taken
    breaker.record(trial, Outcome.SUCCESS)
    assert breaker.state.value == "closed" and breaker.rejected == 2
