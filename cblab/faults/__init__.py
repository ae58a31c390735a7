"""Faults: what a dependency does wrong, as pure data plus a seeded RNG.

A `FaultProfile` says how one service misbehaves (errors, latency, hangs, resets,
refused connections, capacity limits); `plan_request(profile, rng)` decides what
happens to one request; a `Scenario` is a timeline of fault phases loaded from
`data/scenarios/`. The live backend, the simulator, the lab and the MCP proxy all
import this package, so the same seed gives the same decisions everywhere.

Standard library only; imports nothing else of cblab.
"""

from .paths import DATA_DIR_ENV, data_dir
from .profile import (
    DRAWS_PER_REQUEST,
    ERROR_STATUSES,
    HEALTHY,
    ConstantLatency,
    FaultProfile,
    Latency,
    LognormalLatency,
    NormalLatency,
    ProfileError,
    RequestPlan,
    capacity_verdict,
    latency_from_dict,
    plan_request,
    rng_for,
)
from .scenario import (
    ARRIVALS,
    SERVICES,
    LoadSpec,
    Phase,
    Scenario,
    ScenarioError,
    UnknownServiceError,
    available_scenarios,
    resolve_scenario,
)

__all__ = [
    "ARRIVALS",
    "DATA_DIR_ENV",
    "DRAWS_PER_REQUEST",
    "ERROR_STATUSES",
    "HEALTHY",
    "SERVICES",
    "ConstantLatency",
    "FaultProfile",
    "Latency",
    "LoadSpec",
    "LognormalLatency",
    "NormalLatency",
    "Phase",
    "ProfileError",
    "RequestPlan",
    "Scenario",
    "ScenarioError",
    "UnknownServiceError",
    "available_scenarios",
    "capacity_verdict",
    "data_dir",
    "latency_from_dict",
    "plan_request",
    "resolve_scenario",
    "rng_for",
]
