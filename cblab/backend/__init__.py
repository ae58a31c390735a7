"""The fault-injecting backend: the system under test.

Two GitHub-shaped services (users from a JSON fixture, orders from SQLite), each
on its own loopback listener, whose faults (errors, latency, hangs, resets,
refused connections, capacity limits) are set per service through a control API
or played from a scenario. Standard library only; imports nothing else of cblab.

`profile` and `scenario` are pure and shared with the simulator: the same seed
gives the same per-request decisions live and simulated.
"""

from .app import Backend
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
    SERVICES,
    LoadSpec,
    Phase,
    Scenario,
    ScenarioError,
    UnknownServiceError,
    available_scenarios,
)

__all__ = [
    "DRAWS_PER_REQUEST",
    "ERROR_STATUSES",
    "HEALTHY",
    "SERVICES",
    "Backend",
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
    "latency_from_dict",
    "plan_request",
    "rng_for",
]
