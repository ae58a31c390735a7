"""`cblab tune` end to end: 10 minutes of recorded calls -> fit -> 200 settings x 3 stress
variants x 5 seeds -> the robust pick, on the local pool and on a 2-worker Dask cluster.

    python -m benchmarks.bench_tune              # or: python -m benchmarks tune
    python -m benchmarks.bench_tune --quick      # 20 settings, 2 seeds: a smoke run
    python -m benchmarks.bench_tune --repeats 2  # each executor twice, alternating

Target (issue 23): under 60 s on 2 cores for the full search, with the Dask
executor within 15 % of the local pool. The traffic is crafted with a known
profile (healthy 4 min, a 90 % outage 2 min, healthy 4 min, 10 calls/s), written
as event rows the way `cblab load` records them. Wall times include the fit, the
sweep of the current config and the pick (everything the command does); the load
average is printed with them, since the machine may be shared, and so is the CPU
time of the command and its workers (what the run costs, whatever else runs).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import tempfile
import time
from pathlib import Path

from cblab.tune.cli import main as tune

TARGET_S = 60.0
TARGET_DASK_OVERHEAD = 0.15
PHASES = (("healthy", 240.0, 0.02), ("outage", 120.0, 0.9), ("recovered", 240.0, 0.02))
RATE = 10.0


def recorded_traffic(path: Path, seed: int = 1) -> Path:
    rng = random.Random(seed)
    rows, start = [], 0.0
    for phase, seconds, error_rate in PHASES:
        t = start
        while (t := t + rng.expovariate(RATE)) < start + seconds:
            bad = rng.random() < error_rate
            rows.append({"kind": "call", "source": "load", "tool": "github_user", "t": t,
                         "phase": phase, "outcome": "failure" if bad else "success",
                         "latency": 0.05 * rng.lognormvariate(0.0, 0.3)})
        start += seconds
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the pool's and the
    LocalCluster's workers, joined when `cblab tune` closes them)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def timed(argv: list[str]) -> tuple[float, float, str]:
    """(wall s, CPU s, output) of one `cblab tune` run in this process."""
    out = io.StringIO()
    cpu = cpu_seconds()
    started = time.perf_counter()
    with contextlib.redirect_stdout(out):
        code = tune(argv)
    wall = time.perf_counter() - started
    if code != 0:
        raise RuntimeError(f"cblab tune exited {code}: {out.getvalue()[-500:]}")
    return wall, cpu_seconds() - cpu, out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller search (smoke run)")
    parser.add_argument("--no-dask", action="store_true", help="the local pool only")
    parser.add_argument("--repeats", type=int, default=1, metavar="N",
                        help="run each executor N times, alternating (best of N is quoted)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    thresholds = range(1, 21) if not args.quick else range(1, 11)
    timeouts = (2, 5, 10, 15, 20, 30, 45, 60, 90, 120) if not args.quick else (5, 30)
    seeds = 5 if not args.quick else 2
    with tempfile.TemporaryDirectory() as tmp:
        traffic = recorded_traffic(Path(tmp) / "traffic.json")
        common = [str(traffic), "--search", "grid", "--seeds", str(seeds),
                  "--variants", "observed,longer,flapping", "--workers", "2",
                  "--param", "failure_threshold=" + ",".join(map(str, thresholds)),
                  "--param", "timeout=" + ",".join(map(str, timeouts))]
        points = len(thresholds) * len(timeouts)
        runs = points * 3 * seeds + 3 * seeds  # and the current config's
        print(f"{points} settings x 3 variants x {seeds} seeds = {points * 3 * seeds} runs "
              f"(+ the current config's {3 * seeds}); {os.cpu_count()} CPUs")
        results: dict[str, list[float]] = {}
        executors = ("local",) if args.no_dask else ("local", "dask")
        for _ in range(args.repeats):  # alternating, so both see the same background load
            for executor in executors:
                load = os.getloadavg()[0]
                wall, cpu, out = timed([*common, "--executor", executor])
                results.setdefault(executor, []).append(wall)
                lines = out.splitlines()
                pick = next(line for line in lines if line.startswith("robust pick"))
                sweep = next(line for line in lines if " runs in " in line).split(" in ")[1]
                print(f"  {executor:<6} {wall:6.1f} s wall (target < {TARGET_S:g} s; the grid's "
                      f"sweep {sweep.split()[0]} s), {cpu:6.1f} CPU s ({cpu / runs * 1e3:.1f} ms "
                      f"per run), load average {load:.1f} -> {os.getloadavg()[0]:.1f}   "
                      f"{pick.split('(')[0].strip()}")
        for executor, walls in results.items():
            print(f"  best {executor:<6} {min(walls):6.1f} s wall "
                  f"({'met' if min(walls) < TARGET_S else 'NOT met'}: target < {TARGET_S:g} s)")
        if "dask" in results:
            ratio = min(results["dask"]) / min(results["local"])
            print(f"  dask / local: {ratio:.2f} (target <= {1 + TARGET_DASK_OVERHEAD:.2f}: "
                  f"{'met' if ratio <= 1 + TARGET_DASK_OVERHEAD else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
