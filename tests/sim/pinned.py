"""Pinned simulator runs: the events and KPIs of a few runs, recorded once, so that a
change made for speed is seen to change no result (same seed, same events, same KPIs).

    PYTHONPATH=. python -m tests.sim.pinned     # rewrite tests/sim/data/pinned_runs.json

Rewrite the file only for a change that is meant to change results, and say so in
the commit.
"""

from __future__ import annotations

import hashlib
import json
import math
from enum import Enum
from pathlib import Path
from typing import Any

PINNED_FILE = Path(__file__).parent / "data" / "pinned_runs.json"

_UP = {"latency": {"kind": "lognormal", "median_ms": 50.0, "sigma": 0.3}, "error_rate": 0.02}
_DOWN = {"latency": {"kind": "lognormal", "median_ms": 50.0, "sigma": 0.28}, "error_rate": 0.9}
_LOAD = {"rate_per_s": 10.0, "arrivals": "poisson"}
#: Shaped like `cblab tune`'s stress variants of a fitted run (healthy, outage, healthy).
FITTED = {"name": "fitted", "phases": [
    {"name": "healthy", "duration_s": 60.0, "faults": {"users": _UP}, "load": _LOAD},
    {"name": "outage", "duration_s": 30.0, "faults": {"users": _DOWN}, "load": _LOAD},
    {"name": "recovered", "duration_s": 60.0, "faults": {"users": _UP}, "load": _LOAD},
]}
FLAPPING_FITTED = {"name": "fitted-flapping", "phases": [
    FITTED["phases"][0],
    *({**FITTED["phases"][2 if k % 2 else 1], "name": f"burst-{k}", "duration_s": 10.0}
      for k in range(6)),
    FITTED["phases"][2],
]}

#: (scenario, config, options): each is run with seeds 0 and 7.
CASES: list[tuple[Any, dict[str, Any], dict[str, Any]]] = [
    ("outage-and-recovery", {"failure_threshold": 5, "timeout": 5.0}, {}),
    ("outage-and-recovery", {"failure_threshold": 5, "timeout": 5.0}, {"protected": False}),
    ("flapping", {"failure_threshold": 3, "timeout": 2.0, "success_threshold": 1,
                  "half_open_max_calls": 1}, {}),
    ("hang", {"failure_threshold": 2, "timeout": 3.0, "max_trial_duration": 1.0}, {}),
    ("brownout", {"policy": {"name": "count_window", "size": 20, "failure_rate_threshold": 0.3,
                             "minimum_calls": 10, "slow_call_duration": 0.5}}, {}),
    ("slow-burn", {"policy": {"name": "time_window", "window": 10.0, "buckets": 5,
                              "failure_rate_threshold": 0.2, "minimum_calls": 5}},
     {"service": "orders"}),
    ("overload", {"failure_threshold": 4, "timeout": 3.0, "backoff_multiplier": 2.0,
                  "max_timeout": 20.0}, {"service": "orders"}),
    ("rate-limited", {"failure_threshold": 3, "timeout": 1.0}, {"deadline_s": 0.5}),
    (FITTED, {"failure_threshold": 1, "timeout": 2.0}, {}),
    (FITTED, {"failure_threshold": 20, "timeout": 120.0}, {}),
    (FLAPPING_FITTED, {"failure_threshold": 5, "timeout": 5.0}, {"deadline_s": 0.06}),
]
SEEDS = (0, 7)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def case_id(scenario: Any, config: dict[str, Any], options: dict[str, Any], seed: int) -> str:
    name = scenario if isinstance(scenario, str) else scenario["name"]
    return f"{name} {json.dumps(config, sort_keys=True)} {json.dumps(options, sort_keys=True)} seed={seed}"


def measure(scenario: Any, config: dict[str, Any], options: dict[str, Any],
            seed: int) -> dict[str, Any]:
    """What is pinned of one run: a digest of its rows, its counts and its KPIs."""
    from cblab.analysis import run_kpis
    from cblab.sim import simulate

    run = simulate(scenario, config, seed=seed, **options)
    rows = json.dumps([[_plain(v) for v in row] for row in run.rows])
    return {"rows": len(run.rows), "calls": run.calls, "counts": run.counts,
            "digest": hashlib.sha256(rows.encode()).hexdigest(), "kpis": run_kpis(run)}


def same(a: Any, b: Any) -> bool:
    """Equal, with NaN equal to NaN (KPIs such as recovery_s may be NaN)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


def all_cases() -> list[tuple[str, Any, dict[str, Any], dict[str, Any], int]]:
    return [(case_id(s, c, o, seed), s, c, o, seed) for s, c, o in CASES for seed in SEEDS]


if __name__ == "__main__":
    pinned = {key: measure(s, c, o, seed) for key, s, c, o, seed in all_cases()}
    PINNED_FILE.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {PINNED_FILE}: {len(pinned)} runs")
