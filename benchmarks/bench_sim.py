"""Simulator speed: calls per second on one core, a 100 x 100,000-call sweep on 2 cores,
simulated seconds per wall second, and sweep executors side by side.

    python -m benchmarks.bench_sim            # or: python -m benchmarks sim
    python -m benchmarks.bench_sim --quick    # smaller, for a smoke run

Every timing is the best of a few repeats (`time.perf_counter`), the usual way to
read through noise from other processes. Targets: >= 300,000 calls/s on one core;
the sweep in <= 30 s on 2 cores. The component rows (the breaker alone,
`plan_request` alone) show the floor the simulator sits on.

Executors (issue 14): the same 1,000-simulation sweep (no cache) on the local
process pool and on a Dask LocalCluster, both with 2 workers, measured in
alternation; target: Dask within 15 % of the pool. The cluster is started once
and its start-up reported on its own row (a notebook or a real cluster pays it
once, not per sweep). Scaling: the sweep on 1 and on 2 Dask workers (target
>= 1.8x), and from the measured per-simulation cost and 2-worker efficiency, the
time a 10,000-simulation sweep would take on W workers.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable

from cblab import CircuitBreaker, CircuitBreakerConfig, EventLog, Outcome
from cblab.faults.profile import FaultProfile, plan_request, rng_for
from cblab.faults.scenario import Scenario
from cblab.sim import simulate, single_phase
from cblab.sim.executors import DaskExecutor, LocalExecutor
from cblab.sim.sweep import sweep

TARGET_CALLS_PER_S = 300_000
TARGET_SWEEP_S = 30.0
TARGET_DASK_OVERHEAD = 0.15  # Dask within 15 % of the local pool
TARGET_SCALING = 1.8  # 2 workers vs 1
CONFIG = CircuitBreakerConfig(failure_threshold=5, timeout=5.0)
HEALTHY = {"latency": {"kind": "constant", "ms": 20}, "error_rate": 0.01}


def _best(repeats: int, run: Callable[[], tuple[int, float]]) -> tuple[int, float]:
    """(work, seconds) of the fastest of `repeats` runs."""
    results = [run() for _ in range(repeats)]
    return min(results, key=lambda r: r[1] / max(r[0], 1))


def breaker_only(calls: int) -> tuple[int, float]:
    """admit + record on a CLOSED breaker, nothing else: the breaker's own cost."""
    now = [0.0]
    breaker = CircuitBreaker("b", CONFIG, clock=lambda: now[0], event_log=EventLog(16))
    admit, record, success = breaker.admit, breaker.record, Outcome.SUCCESS
    start = time.perf_counter()
    for _ in range(calls):
        record(admit(), success)
    return calls, time.perf_counter() - start


def plan_only(calls: int, latency: dict) -> tuple[int, float]:
    """`plan_request` alone: the shared backend model's cost per request."""
    profile = FaultProfile.from_dict({**HEALTHY, "latency": latency})
    rng = rng_for(0, "users")
    start = time.perf_counter()
    for _ in range(calls):
        plan_request(profile, rng)
    return calls, time.perf_counter() - start


def sim_run(scenario: Scenario, **options) -> tuple[int, float]:
    run = simulate(scenario, CONFIG, seed=1, **options)
    return run.calls, run.wall_s


def sim_cpu(scenario: Scenario) -> tuple[int, float]:
    """(calls, CPU seconds) of one run: on a shared machine CPU time is what the
    simulator itself costs, where wall time also counts waiting for a core."""
    start = time.process_time()
    run = simulate(scenario, CONFIG, seed=1)
    return run.calls, time.process_time() - start


def flapping(calls: int) -> Scenario:
    """The shipped flapping scenario (20 calls/s), stretched to about `calls` calls."""
    base = Scenario.load("flapping")
    return base.scaled(calls / (20.0 * base.total_duration_s))


def _cpu_seconds() -> float:
    """CPU time of this process, its reaped children (pool workers) and its live
    descendants (Dask nannies and workers): the work a sweep costs, whatever the load."""
    import psutil

    own = os.times()
    total = own.user + own.system + own.children_user + own.children_system
    for child in psutil.Process().children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def executor_rows(sims: int, repeats: int) -> tuple[list[tuple[str, str, str]], bool]:
    """The same sweep of `sims` simulations on the local pool and on Dask, side by side."""
    seeds = max(1, sims // 100)
    grid = {"failure_threshold": list(range(2, 12)), "timeout": [1, 2, 3, 5, 8, 10, 15, 20, 30, 45]}
    if sims < 1000:
        grid = {"failure_threshold": list(range(2, 12)), "timeout": [1, 5, 20, 45][: max(1, sims // 100)]}
        seeds = 10 if sims >= 100 else 1
    scenario = Scenario.load("flapping")  # 90 s, ~1,800 calls, trips and probes

    cpu: dict[str, list[float]] = {}

    def timed(executor, label: str = "") -> tuple[float, int]:
        before = _cpu_seconds()
        start = time.perf_counter()
        table = sweep(grid, scenario, seeds, executor=executor, cache=False, progress=False)
        elapsed = time.perf_counter() - start
        cpu.setdefault(label, []).append(_cpu_seconds() - before)
        return elapsed, len(table)

    rows: list[tuple[str, str, str]] = []
    started = time.perf_counter()
    with DaskExecutor(workers=2) as dask2:
        startup = time.perf_counter() - started
        pool2 = LocalExecutor(2)
        local, dask = [], []
        for _ in range(repeats):  # alternate, so both see the same background load
            local.append(timed(pool2, "local")[0])
            seconds, n = timed(dask2, "dask")
            dask.append(seconds)
    with DaskExecutor(workers=1) as dask1:
        one = [timed(dask1, "dask1")[0] for _ in range(repeats)]
    best_local, best_dask, best_one = min(local), min(dask), min(one)
    overhead = best_dask / best_local - 1
    scaling = best_one / best_dask
    # For the projection, CPU time, not wall: it does not depend on what else the
    # machine runs. One simulation's cost on a Dask worker, and the share of a worker's
    # CPU that goes to simulations rather than to Dask (from the 2-worker runs).
    per_sim = min(cpu["dask1"]) / n
    cpu_local, cpu_dask = min(cpu["local"]), min(cpu["dask"])
    efficiency = min(1.0, cpu_local / cpu_dask)
    rows.append((f"sweep {n:,} sims: local pool, 2 workers", f"{best_local:.2f} s "
                 f"({n / best_local:,.0f} sims/s; {cpu_local:.1f} CPU s)", ""))
    rows.append((f"sweep {n:,} sims: Dask LocalCluster, 2 workers", f"{best_dask:.2f} s "
                 f"({overhead:+.0%} vs the pool; {cpu_dask:.1f} CPU s, "
                 f"{cpu_dask / cpu_local - 1:+.0%})",
                 f"target within {TARGET_DASK_OVERHEAD:.0%}: "
                 f"{'met' if overhead <= TARGET_DASK_OVERHEAD else 'NOT met'}"))
    rows.append(("Dask LocalCluster start-up (2 workers, once)", f"{startup:.2f} s", ""))
    rows.append((f"sweep {n:,} sims: Dask, 1 worker", f"{best_one:.2f} s "
                 f"({best_one / n * 1e3:.2f} ms/sim wall, {per_sim * 1e3:.2f} ms CPU)", ""))
    rows.append(("scaling, 1 -> 2 Dask workers", f"{scaling:.2f}x",
                 f"target >= {TARGET_SCALING}x: {'met' if scaling >= TARGET_SCALING else 'NOT met'}"))
    for workers in (8, 32, 128):
        projected = 10_000 * per_sim / (workers * efficiency)
        rows.append((f"projected: 10,000 sims on {workers} Dask workers", f"{projected:.1f} s",
                     f"{per_sim * 1e3:.2f} CPU ms/sim / ({workers} x {efficiency:.0%} "
                     "of each worker on simulations)"))
    met = overhead <= TARGET_DASK_OVERHEAD and scaling >= TARGET_SCALING
    return rows, met


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_sim")
    parser.add_argument("--quick", action="store_true", help="smaller runs (a smoke test)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only-executors", action="store_true",
                        help="only the local-pool vs Dask rows")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.only_executors:
        rows, _ = executor_rows(100 if args.quick else 1000, 1 if args.quick else args.repeats)
        _print_table(rows, args.quick)
        return 0
    calls = 20_000 if args.quick else 200_000
    sweep_points, sweep_calls = (10, 20_000) if args.quick else (100, 100_000)
    repeats = 1 if args.quick else args.repeats

    rows: list[tuple[str, str, str]] = []

    def rate(label: str, result: tuple[int, float], note: str = "") -> float:
        n, seconds = result
        per_s = n / seconds
        rows.append((label, f"{per_s:,.0f} calls/s ({seconds / n * 1e6:.2f} µs/call)", note))
        return per_s

    healthy = single_phase(HEALTHY, duration_s=calls / 20.0, rate_per_s=20.0)
    normal = single_phase({**HEALTHY, "latency": {"kind": "normal", "mean_ms": 25, "sd_ms": 5}},
                          duration_s=calls / 20.0, rate_per_s=20.0)
    busy = single_phase(HEALTHY, duration_s=calls / 500.0, rate_per_s=500.0)
    rate("component: breaker admit+record only", _best(repeats, lambda: breaker_only(calls)))
    rate("component: plan_request only (constant latency)",
         _best(repeats, lambda: plan_only(calls, {"kind": "constant", "ms": 20})))
    rate("component: plan_request only (normal latency)",
         _best(repeats, lambda: plan_only(calls, {"kind": "normal", "mean_ms": 25, "sd_ms": 5})))
    headline = rate("simulate: healthy service, 20/s, constant 20 ms, 1 % errors",
                    _best(repeats, lambda: sim_run(healthy)),
                    f"target >= {TARGET_CALLS_PER_S:,}/s")
    per_cpu = rate("simulate: the same, per CPU second (load-independent)",
                   _best(repeats, lambda: sim_cpu(healthy)), f"target >= {TARGET_CALLS_PER_S:,}/s")
    rate("simulate: same, normal(25, 5) ms latency", _best(repeats, lambda: sim_run(normal)))
    rate("simulate: 500/s, 10 calls in flight (heap path)", _best(repeats, lambda: sim_run(busy)))
    rate("simulate: flapping scenario (trips, rejections, probes)",
         _best(repeats, lambda: sim_run(flapping(calls))))
    rate("simulate: flapping, unprotected", _best(repeats, lambda: sim_run(
        flapping(calls), protected=False)))

    # simulated seconds per wall second, each shipped scenario at its own load
    speeds = []
    for name in ("outage-and-recovery", "flapping", "hang", "brownout", "slow-burn", "overload"):
        service = "orders" if name in ("overload", "slow-burn") else "users"
        scenario = Scenario.load(name)
        _, seconds = _best(repeats, lambda s=scenario, v=service: sim_run(s, service=v))
        speeds.append((name, scenario.total_duration_s / seconds))
    for name, speed in speeds:
        rows.append((f"simulated s per wall s: {name}", f"{speed:,.0f}x", ""))

    # the sweep: sweep_points configurations x sweep_calls calls, on 2 processes
    thresholds = list(range(2, 12))
    timeouts = [1, 2, 5, 10, 20, 30, 45, 60, 90, 120]
    per_axis = max(1, round(sweep_points ** 0.5))
    grid = {"failure_threshold": thresholds[:per_axis], "timeout": timeouts[:per_axis]}
    scenario = flapping(sweep_calls)
    start = time.perf_counter()
    table = sweep(grid, scenario, [0], workers=2, progress=False)
    elapsed = time.perf_counter() - start
    total = int(table["calls"].sum())
    rows.append((
        f"sweep: {len(table)} configs x ~{sweep_calls:,} calls, 2 workers",
        f"{elapsed:.1f} s ({total / elapsed:,.0f} calls/s)",
        f"target <= {TARGET_SWEEP_S:.0f} s" if not args.quick else "quick run",
    ))

    executors, _ = executor_rows(100 if args.quick else 1000, 1 if args.quick else args.repeats)
    rows += executors
    _print_table(rows, args.quick)
    met = headline >= TARGET_CALLS_PER_S
    print(f"\none-core target {'met' if met else 'NOT met'}: {headline:,.0f} calls/s "
          f"({per_cpu:,.0f} per CPU second) vs {TARGET_CALLS_PER_S:,}; sweep {elapsed:.1f} s")
    return 0


def _print_table(rows: list[tuple[str, str, str]], quick: bool) -> None:
    print(f"cblab simulator on {platform.python_implementation()} {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
          f"{' (quick)' if quick else ''}\n")
    print("| measurement | result | note |")
    print("|---|---|---|")
    for label, result, note in rows:
        print(f"| {label} | {result} | {note} |")


if __name__ == "__main__":
    raise SystemExit(main())
