"""Closed-state overhead and open-state rejection cost, cblab vs peers, in one run.

Every contender runs the same trivial coroutine N times per round; rounds
rotate through the contenders so machine noise hits all of them alike, and
each figure is the median over rounds. Overhead = time per call minus a bare
`await` of the same coroutine.
"""

from __future__ import annotations

import asyncio
import os
import platform
import statistics
import time
import warnings

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError

N = int(os.environ.get("CBLAB_BENCH_CALLS", "20000"))
ROUNDS = int(os.environ.get("CBLAB_BENCH_ROUNDS", "9"))


async def work() -> int:
    return 1


class Boom(Exception):
    pass


async def broken() -> int:
    raise Boom


def _closed_contenders() -> dict[str, tuple]:
    import aiobreaker
    import circuitbreaker
    import pybreaker
    from purgatory import AsyncCircuitBreakerFactory

    cblab_breaker = CircuitBreaker("bench", CircuitBreakerConfig(failure_threshold=5))
    cb_work = circuitbreaker.circuit(failure_threshold=5, recovery_timeout=30)(work)
    aio = aiobreaker.CircuitBreaker(fail_max=5)
    pyb = pybreaker.CircuitBreaker(fail_max=5)
    purgatory_factory = AsyncCircuitBreakerFactory(default_threshold=5, default_ttl=30)
    purgatory_work = purgatory_factory("bench")(work)

    async def wrapper(func, *args, **kwargs):
        return await func(*args, **kwargs)

    async def pybreaker_call():
        # pybreaker's asyncio support needs tornado; its sync path does the same bookkeeping
        return await pyb.call(work)

    # Each contender is awaited as `await func(*args)`, the way a user writes it.
    return {
        "bare await": (work, ()),
        "empty async wrapper": (wrapper, (work,)),
        "cblab": (cblab_breaker.call, (work,)),
        "circuitbreaker": (cb_work, ()),
        "aiobreaker": (aio.call_async, (work,)),
        "pybreaker (sync call)": (pybreaker_call, ()),
        "purgatory": (purgatory_work, ()),
    }


# CPU time of this thread: time spent descheduled on a busy machine does not count.
clock = time.thread_time


async def _time_loop(contender: tuple, n: int) -> float:
    func, args = contender
    start = clock()
    for _ in range(n):
        await func(*args)
    return (clock() - start) / n


async def _time_rejections(contender: tuple, n: int) -> float:
    func, args, errors = contender
    start = clock()
    if errors is None:  # a non-raising, synchronous admission check
        for _ in range(n):
            func(*args)
    else:
        for _ in range(n):
            try:
                await func(*args)
            except errors:
                pass
    return (clock() - start) / n


async def _rotate(contenders: dict, timer, rounds: int, n: int) -> dict[str, float]:
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, item in contenders.items():
            samples[name].append(await timer(item, n))
    return {name: statistics.median(values) for name, values in samples.items()}


async def closed_overhead(rounds: int = ROUNDS, n: int = N) -> dict[str, float]:
    """Seconds per call for each contender in the closed state."""
    return await _rotate(_closed_contenders(), _time_loop, rounds, n)


async def _open_contenders() -> dict[str, tuple]:
    import aiobreaker
    import circuitbreaker
    import pybreaker
    from purgatory import AsyncCircuitBreakerFactory
    from purgatory.domain.model import OpenedState

    cblab_breaker = CircuitBreaker("bench", CircuitBreakerConfig(failure_threshold=1, timeout=3600))
    cblab_breaker.record(cblab_breaker.admit(), "failure")  # tripped, like the peers below

    cb_broken = circuitbreaker.circuit(failure_threshold=1, recovery_timeout=3600)(broken)
    aio = aiobreaker.CircuitBreaker(
        fail_max=1, timeout_duration=__import__("datetime").timedelta(hours=1)
    )
    pyb = pybreaker.CircuitBreaker(fail_max=1, reset_timeout=3600)
    factory = AsyncCircuitBreakerFactory(default_threshold=1, default_ttl=3600)
    purgatory_broken = factory("bench-open")(broken)
    for trip in (cb_broken, lambda: aio.call_async(broken), purgatory_broken):
        for _ in range(2):
            try:
                await trip()
            except Exception:
                pass
    pyb.open()

    async def pybreaker_call():
        return await pyb.call(broken)

    return {
        "cblab (raising)": (cblab_breaker.call, (work,), CircuitOpenError),
        "cblab admit() (non-raising)": (cblab_breaker.admit, (), None),
        "circuitbreaker": (cb_broken, (), circuitbreaker.CircuitBreakerError),
        "aiobreaker": (aio.call_async, (work,), aiobreaker.CircuitBreakerError),
        "pybreaker (sync call)": (pybreaker_call, (), pybreaker.CircuitBreakerError),
        "purgatory": (purgatory_broken, (), OpenedState),
    }


async def rejection_cost(rounds: int = ROUNDS, n: int = N) -> dict[str, float]:
    """Seconds per refused call for each contender in the open state."""
    return await _rotate(await _open_contenders(), _time_rejections, rounds, n)


def machine() -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {load}"
    )


def main() -> int:
    warnings.simplefilter("ignore")  # aiobreaker uses datetime.utcnow
    closed = asyncio.run(closed_overhead())
    opened = asyncio.run(rejection_cost())
    bare = closed["bare await"]
    floor = closed["empty async wrapper"] - bare
    peers = ("circuitbreaker", "aiobreaker", "pybreaker (sync call)", "purgatory")
    best_peer = min(peers, key=lambda p: closed[p])
    ours = closed["cblab"] - bare
    print(f"### Closed-state overhead per async call ({N} calls x {ROUNDS} rounds, median)\n")
    print(f"machine: {machine()}\n")
    print("| contender | ns per call | overhead ns | x empty wrapper |")
    print("|---|---:|---:|---:|")
    for name, per_call in closed.items():
        overhead = per_call - bare
        ratio = overhead / floor if floor > 0 else float("nan")
        print(f"| {name} | {per_call * 1e9:,.0f} | {overhead * 1e9:,.0f} | {ratio:.1f} |")
    best_overhead = closed[best_peer] - bare
    print(
        f"\ncblab overhead = {ours / floor:.1f}x the empty wrapper's, "
        f"{ours / best_overhead:.2f}x the best peer's ({best_peer}; target <= 1x: "
        "no slower than every peer)\n"
    )
    print("### Open-state rejection cost (median)\n")
    print("| contender | ns per refused call |")
    print("|---|---:|")
    for name, per_call in opened.items():
        print(f"| {name} | {per_call * 1e9:,.0f} |")
    fastest_peer = min((n for n in opened if not n.startswith("cblab")), key=opened.get)
    print(
        f"\ncblab raising = {opened['cblab (raising)'] / opened[fastest_peer]:.2f}x, "
        f"non-raising = {opened['cblab admit() (non-raising)'] / opened[fastest_peer]:.2f}x "
        f"the fastest peer ({fastest_peer}; target <= 1x)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
