"""Find the phases of a recorded run (healthy, outage, slow, healthy again) from its calls.

A run recorded from real traffic carries no phase labels, but a fit needs them: one
profile over a whole run smears a 20 s outage into a few percent of errors. The calls
are binned in time; per bin, the share of *bad* calls (failed, slow, timed out, or
refused by the breaker) and the answered calls' log latencies. The bins are cut into
segments by optimal partitioning with PELT pruning (Killick et al. 2012), the cost of
a segment being its negative log-likelihood: binomial for the bad share, Gaussian for
log latency (the spread estimated within bins), plus a penalty per change point
(`PENALTY` x ln(calls), twice BIC's). Every segment holds at least `min_calls` calls
(the fit's minimum), so a phase is always fit-able.

Segments are then *classified* against the quietest one, not against zero: an
``outage`` is `FAULT_EXCESS` (10 points) more bad calls than the quietest segment, a
``slow`` phase a typical latency `SLOW_FACTOR` (3) times the fastest other segment's and
`SLOW_MIN_S` (50 ms) more (millisecond calls on a loaded machine triple without any
fault; a breaker's slow-call and deadline settings live in the 100s of ms); the rest is
``healthy``, and neighbours of one kind merge. Background noise (5 % errors all run
long, issue 19's trap) is therefore the baseline, never an outage. One phase left is
named ``all``, as an unlabelled fit always was.

Why no library: ``ruptures`` (PELT, binary segmentation) is well kept, but it works on
one dense signal with generic costs; here the signal is counts with a known
likelihood (a bin with 3 calls must weigh less than one with 300) and a minimum
number of *calls* per segment, which are a few lines over cumulative sums. The series
are short (at most `MAX_BINS` bins), so the exact O(bins^2) worst case costs
milliseconds, and the faults layer stays standard library only.

Tolerance: a change point falls on a bin edge (`Phases.bin_s`, by default long enough
for about 10 calls, at least ``duration / MAX_BINS``), found within two bins of the true
change (within one for error outages, 1.4 bins at worst for latency-only ones in 40
seeds of the crafted runs in tests/faults/test_changepoint.py). On the shipped live
recordings (data/runs) the outage or hang starts within 1.5 s of its label; after it,
callers that measure from their intended start often show a `slow` phase (the backlog
draining), which is what they saw.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from .fit import TIMEOUT_ERRORS

__all__ = ["FAULT_EXCESS", "MAX_BINS", "PENALTY", "SLOW_FACTOR", "Phase", "Phases",
           "find_phases", "phases_by_tool"]

MAX_BINS = 400
CALLS_PER_BIN = 10  # the automatic bin width holds about this many calls
PENALTY = 3.0  # per change point, times ln(calls): twice BIC's 1.5 for 2 parameters + 1 place
FAULT_EXCESS = 0.10  # an outage has this share of bad calls more than the quietest segment
SLOW_FACTOR = 3.0  # a slow phase's typical latency is this many times the fastest segment's
SLOW_MIN_S = 0.05  # ... and at least 50 ms slower: a loaded machine's 5 -> 15 ms is no fault
_SIGMA_FLOOR = 0.05  # log-latency spread floor: interpolated or constant latencies have ~0
_BAD = frozenset({"failure", "slow", "timeout", "rejected"})
_GOOD = frozenset({"success", "excluded"})


@dataclass(frozen=True)
class Phase:
    """One phase found: ``[start_s, end_s)`` on the rows' `t` axis."""

    name: str
    kind: str  # "healthy", "outage" or "slow"
    start_s: float
    end_s: float
    calls: int  # calls that tell (answered, failed, timed out or refused)
    bad_share: float  # of them, failed, slow, timed out or refused
    latency_s: float | None  # typical latency of the answered calls (geometric mean)

    def describe(self) -> str:
        typical = "" if self.latency_s is None else f", typical {self.latency_s * 1000:.3g} ms"
        return (f"{self.name} {self.start_s:.1f}-{self.end_s:.1f} s ({self.calls} calls, "
                f"{self.bad_share:.0%} bad{typical})")


@dataclass(frozen=True)
class Phases:
    """The phases of one series of calls, and the bin width the change points fall on."""

    phases: tuple[Phase, ...]
    bin_s: float
    tool: str | None = None

    def spans(self) -> list[tuple[str, float, float]]:
        """``[(name, start_s, end_s), ...]`` as `cblab.faults.fit.fit_run` takes them."""
        return [(p.name, p.start_s, p.end_s) for p in self.phases]

    def change_points(self) -> list[float]:
        return [p.start_s for p in self.phases[1:]]

    def describe(self) -> str:
        return "; ".join(p.describe() for p in self.phases)


@dataclass
class _Bins:
    """Per-bin sums, and their prefix sums (index k: bins [0, k))."""

    start: float
    width: float
    n: list[int]  # calls that tell
    bad: list[int]
    m: list[int]  # answered calls with a latency
    s: list[float]  # sum of log latency
    q: list[float]  # sum of squared log latency

    def prefix(self) -> tuple[list[float], ...]:
        out = []
        for values in (self.n, self.bad, self.m, self.s, self.q):
            acc = [0.0]
            for v in values:
                acc.append(acc[-1] + v)
            out.append(acc)
        return tuple(out)


def _is_bad(row: Mapping[str, Any], deadline_s: float | None) -> bool | None:
    """True (bad), False (good) or None (says nothing about the dependency)."""
    outcome = row.get("outcome")
    if row.get("error_type") in TIMEOUT_ERRORS:
        return True
    if outcome in _BAD:
        return True
    if outcome in _GOOD:
        latency = row.get("latency")
        return bool(deadline_s is not None and isinstance(latency, int | float)
                    and latency >= deadline_s)
    return None  # dropped (local overload), cancelled, late


def _bin(calls: Sequence[Mapping[str, Any]], width: float, start: float, count: int,
         deadline_s: float | None) -> _Bins:
    bins = _Bins(start, width, [0] * count, [0] * count, [0] * count, [0.0] * count,
                 [0.0] * count)
    for row in calls:
        bad = _is_bad(row, deadline_s)
        if bad is None:
            continue
        k = min(int((float(row["t"]) - start) / width), count - 1)
        bins.n[k] += 1
        bins.bad[k] += bad
        latency = row.get("latency")
        answered = row.get("outcome") in ("success", "excluded", "failure", "slow")
        if answered and isinstance(latency, int | float) and math.isfinite(latency) and not (
                deadline_s is not None and latency >= deadline_s):
            y = math.log(max(float(latency), 1e-4))
            bins.m[k] += 1
            bins.s[k] += y
            bins.q[k] += y * y
    return bins


def _sigma(calls: Sequence[Mapping[str, Any]], bins: _Bins) -> float:
    """The spread of log latency within bins (median over bins with 3+ latencies)."""
    spreads = []
    for m, s, q in zip(bins.m, bins.s, bins.q, strict=True):
        if m >= 3:
            spreads.append(math.sqrt(max(q - s * s / m, 0.0) / (m - 1)))
    return max(median(spreads), _SIGMA_FLOOR) if spreads else _SIGMA_FLOOR


def _segments(bins: _Bins, min_calls: int, penalty: float, sigma: float) -> list[int]:
    """PELT over the bins: the end index of each segment (the last is len(bins))."""
    n, bad, m, s, q = bins.prefix()
    twice_var = 2.0 * sigma * sigma

    def cost(a: int, b: int) -> float:
        calls, errors = n[b] - n[a], bad[b] - bad[a]
        total = 0.0
        if 0 < errors < calls:
            p = errors / calls
            total -= errors * math.log(p) + (calls - errors) * math.log1p(-p)
        answered = m[b] - m[a]
        if answered:
            sums = s[b] - s[a]
            total += max(q[b] - q[a] - sums * sums / answered, 0.0) / twice_var
        return total

    size = len(bins.n)
    best = [math.inf] * (size + 1)
    best[0] = -penalty
    last = [0] * (size + 1)
    candidates = [0]
    for end in range(1, size + 1):
        scored = [(best[a] + cost(a, end) + penalty, a) for a in candidates
                  if n[end] - n[a] >= min_calls and best[a] < math.inf]
        if scored:
            best[end], last[end] = min(scored)
            # PELT: a start that is already worse than the best here never wins later
            worse = {a for value, a in scored if value - penalty > best[end]}
            candidates = [a for a in candidates if a not in worse]
        candidates.append(end)
    if best[size] == math.inf:  # fewer than min_calls calls in all: one segment
        return [size]
    ends, end = [], size
    while end > 0:
        ends.append(end)
        end = last[end]
    return ends[::-1]


def _stats(bins: _Bins, a: int, b: int) -> tuple[int, int, float | None]:
    calls, errors = sum(bins.n[a:b]), sum(bins.bad[a:b])
    answered = sum(bins.m[a:b])
    latency = math.exp(sum(bins.s[a:b]) / answered) if answered else None
    return calls, errors, latency


def _classify(stats: list[tuple[int, int, float | None]]) -> list[str]:
    shares = [e / c if c else 1.0 for c, e, _ in stats]
    quietest = min(shares)
    kinds = ["outage" if share - quietest >= FAULT_EXCESS else "" for share in shares]
    # the latency baseline comes from segments that are not outages: a refused
    # connection fails in a millisecond, faster than any healthy answer
    latencies = [lat for (_, _, lat), kind in zip(stats, kinds, strict=True)
                 if lat is not None and not kind]
    fastest = min(latencies) if latencies else None
    for i, (_, _, latency) in enumerate(stats):
        if kinds[i]:
            continue
        slow = (latency is not None and fastest is not None and latency >= SLOW_FACTOR * fastest
                and latency - fastest >= SLOW_MIN_S)
        kinds[i] = "slow" if slow else "healthy"
    return kinds


def find_phases(rows: Iterable[Mapping[str, Any]], *, deadline_s: float | None = None,
                bin_s: float | None = None, min_calls: int = 20,
                penalty: float = PENALTY) -> Phases:
    """The phases of these call rows (`cblab.schema`: ``t``, ``outcome``, ``latency``),
    taken as one series: filter to one tool first (or use `phases_by_tool`).

    deadline_s  the client's deadline: an answer no sooner counts as timed out
    bin_s       the bin width in seconds (default: about 10 calls a bin, at most
                `MAX_BINS` bins); change points fall on bin edges
    min_calls   the fewest calls a phase may hold
    """
    calls = sorted((r for r in rows if r.get("kind", "call") == "call"
                    and isinstance(r.get("t"), int | float) and math.isfinite(r["t"])),
                   key=lambda r: float(r["t"]))
    if not calls:
        raise ValueError("no call rows with a time `t` to find phases in")
    if bin_s is not None and not (math.isfinite(bin_s) and bin_s > 0):
        raise ValueError(f"bin_s must be seconds > 0, got {bin_s!r}")
    first, final = float(calls[0]["t"]), float(calls[-1]["t"])
    span = final - first
    if bin_s is None:
        bin_s = max(span / MAX_BINS, CALLS_PER_BIN * span / len(calls)) if span > 0 else 1.0
    count = max(1, min(math.ceil(span / bin_s) if span > 0 else 1, 100 * MAX_BINS))
    bins = _bin(calls, bin_s, first, count, deadline_s)
    total = max(sum(bins.n), 2)
    ends = _segments(bins, min_calls, penalty * math.log(total), _sigma(calls, bins))
    starts = [0, *ends[:-1]]
    kinds = _classify([_stats(bins, a, b) for a, b in zip(starts, ends, strict=True)])
    merged: list[tuple[str, int, int]] = []
    for kind, a, b in zip(kinds, starts, ends, strict=True):
        if merged and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1], b)
        else:
            merged.append((kind, a, b))
    seen: dict[str, int] = {}
    phases = []
    for i, (kind, a, b) in enumerate(merged):
        seen[kind] = seen.get(kind, 0) + 1
        name = "all" if len(merged) == 1 else kind if seen[kind] == 1 else f"{kind}-{seen[kind]}"
        calls_in, errors, latency = _stats(bins, a, b)
        start = first + a * bin_s
        # the last phase ends just past the last call (fit_run's spans are [start, end))
        end = first + b * bin_s if i < len(merged) - 1 else math.nextafter(final, math.inf)
        phases.append(Phase(name, kind, start, max(end, start), calls_in,
                            errors / calls_in if calls_in else 0.0, latency))
    tools = {r.get("tool") for r in calls}
    tool = next(iter(tools)) if len(tools) == 1 else None
    return Phases(tuple(phases), bin_s, tool if isinstance(tool, str) else None)


def phases_by_tool(rows: Iterable[Mapping[str, Any]], **options: Any) -> dict[str, Phases]:
    """`find_phases` for each tool's calls on its own (rows without a tool: key "")."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        if row.get("kind", "call") == "call":
            groups.setdefault(str(row.get("tool") or ""), []).append(row)
    return {tool: find_phases(calls, **options) for tool, calls in sorted(groups.items())}
