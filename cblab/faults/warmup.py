"""Find the warm-up at the start of a recorded run, so a fit describes the service.

The first calls of a fresh client process can stall for seconds (fastmcp's client
imports JSON-schema tooling on the first call to a tool with an output schema:
5-6.5 s here); an open-loop load generator measures every call from its *intended*
start, so every call scheduled during the stall carries it. Fitted as it is, one
stall turns a 50 ms service into a p99 of a minute.

Rule: the warm-up is a run of leading answered calls whose latency is an outlier
against the rest of the run (more than ``factor`` x the rest's p99 and at least
``min_excess_s`` above it); it ends when the last of them was answered, and every
call scheduled before then is dropped with it. It is looked for only in the first
``max_fraction`` of the run, so an outage later in the run is never taken for one.
Standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Warmup", "find_warmup", "parse_warmup"]


@dataclass(frozen=True)
class Warmup:
    end_s: float  # calls scheduled before this `t` are warm-up (0.0: none found)
    dropped: int  # how many rows that is

    def __bool__(self) -> bool:
        return self.dropped > 0


def _p99(values: Sequence[float]) -> float:
    ordered = sorted(values)
    return ordered[min(max(math.ceil(0.99 * len(ordered)) - 1, 0), len(ordered) - 1)]


def find_warmup(rows: Sequence[Mapping[str, Any]], *, factor: float = 3.0,
                min_excess_s: float = 1.0, max_fraction: float = 0.2) -> Warmup:
    """The warm-up of call rows (`cblab.schema`: ``t``, ``latency``, ``outcome``)."""
    timed = sorted((r for r in rows if isinstance(r.get("t"), int | float)),
                   key=lambda r: float(r["t"]))
    answered = [r for r in timed if isinstance(r.get("latency"), int | float)
                and r.get("outcome") in ("success", "failure", "slow")]
    if len(answered) < 10:
        return Warmup(0.0, 0)
    start, end = float(timed[0]["t"]), float(timed[-1]["t"])
    horizon = start + max_fraction * (end - start)
    later = [float(r["latency"]) for r in answered if float(r["t"]) > horizon]
    if len(later) < 10:
        return Warmup(0.0, 0)
    limit = max(factor * _p99(later), _p99(later) + min_excess_s)
    warm_end = None
    for row in answered:
        t, latency = float(row["t"]), float(row["latency"])
        if t > horizon or (warm_end is not None and t >= warm_end and latency <= limit):
            break
        if latency > limit:
            warm_end = max(warm_end or t, t + latency)
    if warm_end is None:
        return Warmup(0.0, 0)
    return Warmup(warm_end, sum(1 for r in timed if float(r["t"]) < warm_end))


def parse_warmup(text: str) -> str | float:
    """A `--warmup` flag: "auto" or seconds >= 0 (ValueError naming the flag)."""
    if text == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"--warmup must be 'auto' or seconds >= 0, got {text!r}")
    return value
