"""Discrete-event simulation of the lab: the real breaker on virtual time.

    from cblab.sim import simulate
    run = simulate("outage-and-recovery", {"failure_threshold": 5, "timeout": 10}, seed=1)
    frame = run.to_frame()          # the same event schema as a live run

Standard library only; pandas is imported by `SimRun.to_frame` and `sweep`
(and tqdm by `sweep`), when they are called.
"""

from cblab.demo import SERVICE_ROUTES

from .engine import EmptySchedule, Engine
from .model import Simulation
from .run import DEFAULT_DEADLINE_S, SimRun, simulate, simulate_pair
from .sweep import SweepError, grid_points, sweep
from .theory import calls_until_trip, expected_calls_until_trip
from .workload import LoadPhase, arrival_times, load_phases, resolve_scenario, single_phase

__all__ = [
    "DEFAULT_DEADLINE_S",
    "SERVICE_ROUTES",
    "EmptySchedule",
    "Engine",
    "LoadPhase",
    "SimRun",
    "Simulation",
    "SweepError",
    "arrival_times",
    "calls_until_trip",
    "expected_calls_until_trip",
    "grid_points",
    "load_phases",
    "resolve_scenario",
    "simulate",
    "simulate_pair",
    "single_phase",
    "sweep",
]
