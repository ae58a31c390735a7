"""Fit fault profiles to recorded traffic, so the simulator can replay *your* service.

From the calls of a recorded run (`cblab.schema` rows, e.g. `cblab load` against
your server, or the live lab pointed at it), per phase:

- **latency**: the answered calls' latencies (successes and failures: the simulator
  gives both the profile's latency) fitted as constant, normal and lognormal by
  matching the observed median and 90th percentile (robust to the odd outlier a
  loaded machine adds, where moments are not); the one with the smallest
  Kolmogorov-Smirnov distance wins;
- **error rate**: failed answers / calls, with a 95 % Wilson interval;
- **timeouts**: calls that hit a deadline become `slow_fraction` with `slow_ms`
  past the deadline (every call timed out: mode "hang"). A call timed out when the
  load generator says so (outcome "timeout"), when its error names a timeout
  (`TIMEOUT_ERRORS`: a client guard's own deadline reaches the caller as an error),
  or when it failed no sooner than `deadline_s`.

Quality is shown, not hidden: `RunFit.quality()` is a DataFrame (one row per phase,
`quality_rows()` the same as dicts) with the KS distance, the observed and fitted
p50/p90/p99 side by side, and the error-rate interval; a phase with fewer than
`MIN_CALLS` calls is refused (not enough to fit anything).

Warm-up: by default (``warmup="auto"``) the start of the run is searched for a
client warm-up stall (`cblab.faults.warmup`) and those calls are left out; the fit
says how many (`RunFit.warmup`). ``warmup=0`` keeps every call; a number of seconds
drops the calls scheduled before it.
`RunFit.scenario()` turns the fits into a scenario dict (service ``users``) that
`cblab.sim.simulate` and `cblab.sim.sweep.sweep` accept.

Standard library only: rows are plain dicts (a frame's ``to_dict("records")``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from statistics import NormalDist, median
from typing import TYPE_CHECKING, Any

from .profile import ConstantLatency, FaultProfile, Latency, LognormalLatency, NormalLatency
from .warmup import Warmup, find_warmup

if TYPE_CHECKING:
    from .changepoint import Phases

__all__ = ["MIN_CALLS", "TIMEOUT_ERRORS", "FitError", "LatencyFit", "PhaseFit", "RunFit", "Warmup",
           "fit_latency", "fit_run"]

MIN_CALLS = 20
QUANTILES = (0.5, 0.9, 0.99)
_Z95 = 1.959963984540054
_Z90 = 1.2815515655446004  # the standard normal's 90th percentile
_FAILED = frozenset({"failure", "slow"})  # answered, but not a success
_TIMED_OUT = frozenset({"timeout"})
#: error_type values that mean "no answer before a deadline" (cblab's codes, MCP's,
#: Python's and httpx's names)
TIMEOUT_ERRORS = frozenset({"deadline_exceeded", "request_timeout", "TimeoutError",
                            "ReadTimeout", "WriteTimeout", "PoolTimeout", "ConnectTimeout"})
_NOT_SENT = frozenset({"dropped", "rejected", "cancelled"})  # never reached the service


class FitError(ValueError):
    """Not enough (or not the right) data to fit; the message says what is missing."""


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank quantile of sorted values."""
    return ordered[min(max(math.ceil(q * len(ordered)) - 1, 0), len(ordered) - 1)]


def _cdf(latency: Latency, x_ms: float) -> float:
    if isinstance(latency, ConstantLatency):
        return 1.0 if x_ms >= latency.ms else 0.0
    if isinstance(latency, NormalLatency):
        if latency.sd_ms == 0:
            return 1.0 if x_ms >= latency.mean_ms else 0.0
        dist = NormalDist(latency.mean_ms, latency.sd_ms)
        p0 = dist.cdf(0.0)
        return max(0.0, (dist.cdf(x_ms) - p0) / (1.0 - p0)) if x_ms >= 0 else 0.0
    if x_ms <= 0 or latency.sigma == 0 or latency.median_ms == 0:
        return 1.0 if x_ms >= latency.median_ms else 0.0
    return NormalDist(math.log(latency.median_ms), latency.sigma).cdf(math.log(x_ms))


def ks_distance(ordered: Sequence[float], latency: Latency) -> float:
    """Kolmogorov-Smirnov distance between sorted samples (ms) and a distribution."""
    n = len(ordered)
    worst = 0.0
    for i, x in enumerate(ordered):
        f = _cdf(latency, x)
        worst = max(worst, (i + 1) / n - f, f - i / n)
    return worst


@dataclass(frozen=True)
class LatencyFit:
    """The chosen latency distribution and how well each candidate fitted."""

    latency: Latency
    ks: float
    candidates: Mapping[str, float]  # kind -> KS distance
    observed_ms: Mapping[float, float]  # quantile -> observed
    fitted_ms: Mapping[float, float]  # quantile -> the fitted distribution's


def fit_latency(samples_ms: Iterable[float], kinds: Sequence[str] = ("constant", "normal",
                                                                      "lognormal")) -> LatencyFit:
    """Fit latencies (milliseconds, >= 0) and keep the kind with the smallest KS distance."""
    ordered = sorted(float(x) for x in samples_ms)
    if len(ordered) < MIN_CALLS:
        raise FitError(f"need at least {MIN_CALLS} answered calls to fit a latency, got "
                       f"{len(ordered)}")
    if ordered[0] < 0 or not math.isfinite(ordered[-1]):
        raise FitError("latencies must be finite and >= 0")
    p50, p90 = median(ordered), _quantile(ordered, 0.9)
    candidates: dict[str, Latency] = {}
    if "constant" in kinds:
        candidates["constant"] = ConstantLatency(p50)
    if "normal" in kinds:
        candidates["normal"] = NormalLatency(p50, (p90 - p50) / _Z90)
    if "lognormal" in kinds and ordered[0] > 0:
        candidates["lognormal"] = LognormalLatency(p50, math.log(p90 / p50) / _Z90)
    if not candidates:
        raise FitError(f"no latency kind to fit among {list(kinds)!r}")
    scores = {kind: ks_distance(ordered, dist) for kind, dist in candidates.items()}
    best = min(scores, key=lambda kind: scores[kind])
    chosen = candidates[best]
    return LatencyFit(
        latency=chosen,
        ks=scores[best],
        candidates=scores,
        observed_ms={q: _quantile(ordered, q) for q in QUANTILES},
        fitted_ms={q: chosen.quantile_ms(q) for q in QUANTILES},
    )


def _wilson(k: int, n: int) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    denom = 1 + _Z95**2 / n
    centre = (p + _Z95**2 / (2 * n)) / denom
    half = _Z95 * math.sqrt(p * (1 - p) / n + _Z95**2 / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class PhaseFit:
    """One phase's fitted profile and the evidence for it."""

    name: str
    profile: FaultProfile
    calls: int
    errors: int
    timeouts: int
    duration_s: float
    rate_per_s: float
    latency: LatencyFit | None  # None when nothing was answered (all timed out)
    error_interval: tuple[float, float] = field(default=(0.0, 1.0))

    def quality(self) -> dict[str, Any]:
        """What the fit rests on and how close it is, for a table."""
        row: dict[str, Any] = {
            "phase": self.name, "calls": self.calls, "rate_per_s": round(self.rate_per_s, 2),
            "error_rate": round(self.profile.error_rate, 4),
            "error_rate_95ci": tuple(round(x, 4) for x in self.error_interval),
            "timeouts": self.timeouts,
        }
        if self.latency is not None:
            row["latency"] = self.latency.latency.to_dict()
            row["ks"] = round(self.latency.ks, 4)
            for q in QUANTILES:
                tag = f"p{round(q * 100)}"
                row[f"{tag}_ms_observed"] = round(self.latency.observed_ms[q], 2)
                row[f"{tag}_ms_fitted"] = round(self.latency.fitted_ms[q], 2)
        return row


@dataclass(frozen=True)
class RunFit:
    phases: tuple[PhaseFit, ...]
    warmup: Warmup = field(default=Warmup(0.0, 0))  # calls left out as client warm-up
    found: Phases | None = None  # the phases change-point detection found (phases="auto")

    def quality_rows(self) -> list[dict[str, Any]]:
        return [phase.quality() for phase in self.phases]

    def quality(self) -> Any:
        """One row per phase (a pandas DataFrame, indexed by phase)."""
        import pandas as pd

        rows = self.quality_rows()
        for row in rows:
            if "latency" in row:
                row["latency"] = ", ".join(
                    f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in row["latency"].items())
        return pd.DataFrame(rows).set_index("phase")

    def scenario(self, name: str = "fitted", service: str = "users") -> dict[str, Any]:
        """A scenario dict (one phase per fitted phase) for `cblab.sim.simulate`/`sweep`."""
        return {
            "name": name,
            "description": "fitted from a recorded run by cblab.faults.fit",
            "phases": [
                {"name": p.name, "duration_s": max(p.duration_s, 1e-3),
                 "faults": {service: p.profile.to_dict()},
                 "load": {"rate_per_s": p.rate_per_s, "arrivals": "poisson"}}
                for p in self.phases
            ],
        }


def _timed_out(row: Mapping[str, Any], deadline_s: float | None) -> bool:
    if row.get("outcome") in _TIMED_OUT or row.get("error_type") in TIMEOUT_ERRORS:
        return True
    latency = row.get("latency")
    return (deadline_s is not None and row.get("outcome") == "failure"
            and isinstance(latency, (int, float)) and latency >= deadline_s)


def _phase_fit(name: str, rows: list[Mapping[str, Any]], deadline_s: float | None) -> PhaseFit:
    sent = [r for r in rows if r.get("outcome") not in _NOT_SENT]
    if len(sent) < MIN_CALLS:
        raise FitError(f"phase {name!r}: need at least {MIN_CALLS} calls that reached the "
                       f"service, got {len(sent)}")
    answered = [r for r in sent if not _timed_out(r, deadline_s)]
    errors = sum(1 for r in answered if r.get("outcome") in _FAILED)
    timeouts = len(sent) - len(answered)
    times = [float(r["t"]) for r in rows if r.get("t") is not None]
    duration = (max(times) - min(times)) if times else 0.0
    rate = (len(rows) - 1) / duration if duration > 0 else 0.0
    latencies = [float(r["latency"]) * 1000.0 for r in answered if r.get("latency") is not None]
    fields: dict[str, Any] = {"error_rate": errors / len(sent)}
    latency_fit = None
    if len(latencies) >= MIN_CALLS:
        latency_fit = fit_latency(latencies)
        fields["latency"] = latency_fit.latency
    if timeouts:
        if deadline_s is None:
            raise FitError(f"phase {name!r}: {timeouts} calls timed out; give deadline_s (the "
                           f"client's deadline) to model them")
        if not answered:
            fields = {"mode": "hang"}
        else:
            fields["slow_fraction"] = timeouts / len(sent)
            fields["slow_ms"] = deadline_s * 1000.0 * 2
    if latency_fit is None and "mode" not in fields:
        raise FitError(f"phase {name!r}: only {len(latencies)} answered calls, need {MIN_CALLS}")
    return PhaseFit(name, FaultProfile(**fields), len(sent), errors, timeouts, duration, rate,
                    latency_fit, _wilson(errors, len(sent)))


def fit_run(rows: Iterable[Mapping[str, Any]], *, source: str | None = "load",
            tool: str | None = None, deadline_s: float | None = None,
            phases: Sequence[tuple[str, float, float]] | str | None = None,
            warmup: str | float = "auto") -> RunFit:
    """Fit a profile per phase of a recorded run's call rows.

    source      keep rows of this source (the load generator sees what a client
                sees: "load"); None keeps every call row
    tool        keep one tool's calls (None: all)
    deadline_s  the client's deadline, needed when calls timed out
    phases      ``[(name, start_s, end_s), ...]`` on the rows' `t` axis; "auto" finds
                them (`cblab.faults.changepoint`, after the warm-up is left out; they
                are in `RunFit.found`); without it the rows' ``phase`` column
                decides, else the run is one phase "all"
    warmup      "auto" (find a client warm-up stall and leave it out), 0 (keep
                every call) or seconds (leave out calls scheduled before then)
    """
    calls = [r for r in rows if r.get("kind", "call") == "call"
             and (source is None or r.get("source") == source)
             and (tool is None or r.get("tool") == tool)]
    if not calls:
        raise FitError(f"no call rows{f' from source {source!r}' if source else ''}"
                       f"{f' for tool {tool!r}' if tool else ''}")
    found = _warmup(calls, warmup)
    if found:
        calls = [r for r in calls if float(r["t"]) >= found.end_s]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    detected = None
    if isinstance(phases, str):
        if phases != "auto":
            raise FitError(f"phases must be 'auto' or [(name, start_s, end_s), ...], got "
                           f"{phases!r}")
        from .changepoint import find_phases

        detected = find_phases(calls, deadline_s=deadline_s, min_calls=MIN_CALLS)
        phases = detected.spans()
    if phases is not None:
        for name, start, end in phases:
            groups[name] = [r for r in calls if start <= float(r["t"]) < end]
    elif any(isinstance(r.get("phase"), str) and r.get("phase") for r in calls):
        for r in sorted(calls, key=lambda r: float(r["t"])):
            label = r.get("phase")
            if isinstance(label, str) and label:
                groups.setdefault(label, []).append(r)
    else:
        groups["all"] = calls
    return RunFit(tuple(_phase_fit(name, group, deadline_s) for name, group in groups.items()
                        if group), found, detected)


def _warmup(calls: Sequence[Mapping[str, Any]], warmup: str | float) -> Warmup:
    if warmup == "auto":
        return find_warmup(calls)
    if isinstance(warmup, bool) or not isinstance(warmup, int | float) or not (
            math.isfinite(warmup) and warmup >= 0):
        raise FitError(f"warmup must be 'auto' or seconds >= 0, got {warmup!r}")
    if warmup == 0:
        return Warmup(0.0, 0)
    start = min(float(r["t"]) for r in calls)
    end = start + float(warmup)
    return Warmup(end, sum(1 for r in calls if float(r["t"]) < end))
