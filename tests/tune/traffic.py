"""Crafted traffic with a known generating profile: healthy, a hard outage, healthy again."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

#: (phase, seconds, calls per second, error rate, median latency in s)
PROFILE = (("healthy", 30.0, 20.0, 0.02, 0.05),
           ("outage", 20.0, 20.0, 0.9, 0.05),
           ("recovered", 30.0, 20.0, 0.02, 0.05))


def crafted_rows(seed: int = 7, profile: tuple[Any, ...] = PROFILE) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    start = 0.0
    for phase, seconds, rate, error_rate, median in profile:
        t = start
        while True:
            t += rng.expovariate(rate)
            if t >= start + seconds:
                break
            failed = rng.random() < error_rate
            rows.append({"kind": "call", "source": "load", "tool": "github_user", "t": t,
                         "phase": phase, "outcome": "failure" if failed else "success",
                         "latency": median * rng.lognormvariate(0.0, 0.3),
                         "error_type": "http_500" if failed else None})
        start += seconds
    return rows


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path
