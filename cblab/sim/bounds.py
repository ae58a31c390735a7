"""Work bounds: how much a simulation or a sweep may do, checked before it starts.

Each input has its own bound (a rate, a duration, a seed count), but their
product does not: `--seeds 1000000000`, `--rate 1e9` or a large `--time-scale`
are each acceptable and together take the machine. So the work itself is
bounded, up front, from what the inputs imply:

    calls per run    expected arrivals: the sum over phases of rate x duration
    runs per sweep   grid points x scenarios x seeds
    calls per sweep  the sum of every run's expected calls

A run's memory grows with its calls (about 200 bytes per event row while it
runs); a sweep's with its runs (one row of KPIs each); its time with its calls.
The defaults keep one run under 400 MB and a sweep within tens of minutes per core;
each limit is a keyword (and a command-line flag) that raises it.

Poisson arrivals vary around the expectation (a standard deviation of sqrt(n)),
so a run at the limit may simulate a few hundred calls more than it says.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "add_work_limit_options",
    "DEFAULT_MAX_CALLS",
    "DEFAULT_MAX_RUNS",
    "DEFAULT_MAX_SWEEP_CALLS",
    "FLAGS",
    "WorkLimitError",
    "check_limit",
    "expected_calls",
]

#: Simulated calls per run (at the limit: about 400 MB peak with its KPIs, 25 s on one core).
DEFAULT_MAX_CALLS = 1_000_000
#: Runs per sweep (grid points x scenarios x seeds).
DEFAULT_MAX_RUNS = 100_000
#: Simulated calls per sweep, all runs together (tens of minutes per core at the limit).
DEFAULT_MAX_SWEEP_CALLS = 100_000_000

#: The command-line flag that raises each limit.
FLAGS = {"max_calls": "--max-calls", "max_runs": "--max-runs",
         "max_sweep_calls": "--max-sweep-calls"}


class WorkLimitError(ValueError):
    """The work asked for is past a limit; says how much, which limit, and how to raise it."""

    def __init__(self, what: str, amount: float, limit_name: str, limit: int) -> None:
        # `what` says what is counted, with "{amount}" where the count goes
        self.what = what
        self.amount = amount
        self.limit_name = limit_name
        self.limit = limit
        super().__init__(self.describe(f"{limit_name}="))

    def describe(self, how: str) -> str:
        """The message, with `how` the way to raise the limit (a keyword or a flag)."""
        return (f"{self.what.replace('{amount}', _count(self.amount))}, more than the limit of "
                f"{_count(self.limit)} (raise it with {how}N)")

    def for_command_line(self) -> str:
        return self.describe(f"{FLAGS.get(self.limit_name, self.limit_name)} ")


def _count(value: float) -> str:
    return f"{value:,.0f}" if value < 1e15 else f"{value:.3g}"


def check_limit(name: str, value: Any) -> int:
    """A limit given by the caller: an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def expected_calls(phases: Iterable[Any]) -> float:
    """Expected arrivals over `phases` (`LoadPhase`s: start, end, rate_per_s)."""
    total = 0.0
    for phase in phases:
        total += phase.rate_per_s * (phase.end - phase.start)
    return total if math.isfinite(total) else math.inf


def add_work_limit_options(group: Any, *, work: str, product: str,
                           count: Callable[[str], int]) -> None:
    """``--max-runs`` and ``--max-sweep-calls`` on an argparse group: `work` names what
    is refused ("sweep", "search"), `product` what its runs multiply, `count` parses N
    (each CLI keeps its own parser, and so its own message for a bad N)."""
    group.add_argument("--max-runs", type=count, default=DEFAULT_MAX_RUNS, metavar="N",
                       help=f"refuse a {work} of more runs ({product}; "
                            f"default {DEFAULT_MAX_RUNS:,})")
    group.add_argument("--max-sweep-calls", type=count, default=DEFAULT_MAX_SWEEP_CALLS,
                       metavar="N", help=f"refuse a {work} expected to simulate more calls "
                                         f"in all (default {DEFAULT_MAX_SWEEP_CALLS:,})")
