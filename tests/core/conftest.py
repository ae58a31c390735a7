import pytest

from cblab import CircuitBreaker, CircuitBreakerConfig, ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


@pytest.fixture
def make_breaker(clock):
    def make(**config) -> CircuitBreaker:
        return CircuitBreaker("dep", CircuitBreakerConfig(**config), clock=clock)

    return make


class Boom(Exception):
    pass


async def ok(value="ok"):
    return value


async def fail():
    raise Boom("backend down")
