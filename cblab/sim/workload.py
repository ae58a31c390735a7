"""Offered load: when calls arrive, phase by phase.

Arrivals are open-loop (they never wait for answers): Poisson (exponential
gaps) or constant (evenly spaced, the first at the phase's start), at the rate
of the phase in force. A Poisson stream restarts at each phase boundary, which
is exact for a memoryless process; a phase with rate 0 has no arrivals.

Arrival times come from their own RNG, so they depend only on the seed and the
scenario, never on the breaker: a protected and an unprotected run with the
same seed see the same arrivals.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from cblab.faults import ARRIVALS, SERVICES, FaultProfile, LoadSpec, Phase, Scenario, ScenarioError
from cblab.faults import resolve_scenario as resolve_scenario  # re-exported: its old home

__all__ = [
    "LoadPhase",
    "arrival_rng",
    "arrival_times",
    "load_phases",
    "resolve_scenario",
    "single_phase",
]


@dataclass(frozen=True, slots=True)
class LoadPhase:
    """One phase as the workload sees it: a window of time and its arrival process."""

    name: str
    start: float
    end: float
    rate_per_s: float
    arrivals: str  # "poisson" or "constant"


def load_phases(
    scenario: Scenario, *, rate: float | None = None, arrivals: str | None = None
) -> list[LoadPhase]:
    """Each phase's window and arrival process.

    `rate` (calls per second) overrides every phase's `load.rate_per_s`;
    `arrivals` overrides the arrival kind. A phase without `load` needs `rate`.
    """
    if rate is not None and (
        isinstance(rate, bool) or not isinstance(rate, (int, float))
        or not math.isfinite(rate) or rate < 0
    ):
        raise ValueError(f"rate must be a finite number of calls per second >= 0, got {rate!r}")
    if arrivals is not None and arrivals not in ARRIVALS:
        raise ValueError(f"arrivals must be one of {', '.join(ARRIVALS)}, got {arrivals!r}")
    phases = []
    for start, phase in zip(scenario.phase_starts, scenario.phases, strict=True):
        load = phase.load
        if rate is None and load is None:
            raise ScenarioError(
                f"scenario {scenario.name!r}: phase {phase.name!r} has no load; pass rate="
            )
        phase_rate = float(rate) if rate is not None else load.rate_per_s  # type: ignore[union-attr]
        kind = arrivals or (load.arrivals if load is not None else "poisson")
        phases.append(LoadPhase(phase.name, start, start + phase.duration_s, phase_rate, kind))
    return phases


def arrival_rng(seed: int | str) -> random.Random:
    """The arrivals' RNG for `seed` (independent of the backend's per-service RNGs)."""
    return random.Random(f"cblab-sim:{seed}:arrivals")


def arrival_times(phases: list[LoadPhase], rng: random.Random) -> Iterator[float]:
    """Arrival times, ascending, over all phases."""
    expovariate = rng.expovariate
    for phase in phases:
        rate, start, end = phase.rate_per_s, phase.start, phase.end
        if rate <= 0:
            continue
        if phase.arrivals == "poisson":
            t = start + expovariate(rate)
            while t < end:
                yield t
                t += expovariate(rate)
        else:
            gap, k, t = 1.0 / rate, 0, start
            while t < end:
                yield t
                k += 1
                t = start + k * gap  # no accumulated rounding


def single_phase(
    profile: FaultProfile | Mapping[str, Any] | None = None,
    *,
    duration_s: float,
    rate_per_s: float,
    arrivals: str = "poisson",
    service: str = "users",
    name: str = "steady",
) -> Scenario:
    """A one-phase scenario: `service` behaves as `profile` for `duration_s` seconds."""
    if service not in SERVICES:
        raise ScenarioError(f"unknown service {service!r}; services: {', '.join(SERVICES)}")
    if profile is None:
        profile = FaultProfile()
    elif not isinstance(profile, FaultProfile):
        profile = FaultProfile.from_dict(profile)
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s) and duration_s > 0):
        raise ScenarioError(f"duration_s must be a finite number > 0, got {duration_s!r}")
    load = LoadSpec.from_dict({"rate_per_s": rate_per_s, "arrivals": arrivals})
    phase = Phase(name, float(duration_s), MappingProxyType({service: profile}), load)
    return Scenario(name, f"{service}: one phase, {profile.mode}", (phase,))
