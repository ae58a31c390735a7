"""Scenarios as analysis sees them: which phases are faults, where phases lie in time,
and which scenario (at which durations) a recorded run played.

The one definition of a fault phase is `fault_phase_names`; `phase_windows`
turns phases into time windows on the run's clock (t = 0 at the scenario's
start), `phase_labels` names the phase in force at any `t`, and
`played_scenario` gives the scenario a `cblab.runs.Run` played, with the
durations it was played at. KPIs (`cblab.analysis.kpis`), reports and the
recorder all use these, so they agree on phases and faults.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cblab.faults.profile import FaultProfile
from cblab.faults.scenario import SERVICES, Phase, Scenario, ScenarioError, resolve_scenario

from .frames import AnalysisError, _shown

__all__ = [
    "Window",
    "as_scenario",
    "baseline_phase",
    "fault_phase_names",
    "phase_labels",
    "phase_windows",
    "played_scenario",
]


@dataclass(frozen=True, slots=True)
class Window:
    """A scenario phase as analysis sees it."""

    name: str
    start: float
    end: float
    fault: bool


# --- fault phases and phase windows ------------------------------------------------------


def _severity(profile: FaultProfile) -> tuple[bool, float, float]:
    """How badly a profile fails (for picking the baseline): not up first, then the
    share of failed requests, then the share of slow ones."""
    return (profile.mode != "up", profile.error_rate + profile.reset_rate, profile.slow_fraction)


def _effective(profile: FaultProfile) -> tuple[Any, ...]:
    """What a profile does: fields that cannot matter (the status mix of a service
    that never errs, say) are left out, so they never make a phase look different."""
    if profile.mode != "up":
        return (profile.mode, profile.max_concurrency, profile.overflow)
    errs = profile.error_rate > 0
    slows = profile.slow_fraction > 0
    limited = profile.max_concurrency is not None
    return (
        profile.mode, profile.error_rate, profile.status_mix if errs else None,
        profile.retry_after_s if errs else None, profile.latency, profile.slow_fraction,
        profile.slow_ms if slows else None, profile.reset_rate, profile.max_concurrency,
        profile.overflow if limited else None,
    )


def baseline_phase(scenario: Any, service: str) -> Phase:
    """The phase that shows `service` as it normally is: its least failing phase (not
    down or hung, the fewest errors and resets, the fewest slow requests), the
    earliest of equals. Its background errors are the service's normal, not a fault."""
    plan = as_scenario(scenario)
    if plan is None:
        raise AnalysisError("a baseline phase needs a scenario")
    return min(plan.phases, key=lambda phase: _severity(phase.profile(service)))


def fault_phase_names(scenario: Any, service: str | None = None) -> list[str]:
    """Names of the phases in which `service` (every service when None) is at fault.

    A service is at fault in a phase when it is down or hangs, or when it behaves
    differently from its baseline phase (`baseline_phase`: more errors, another
    latency...), or when it is capacity-limited and the load differs from the
    baseline's. Background noise is not a fault: errors that every healthy phase
    has (`with_background_errors`) make no phase a fault phase. A phase that says
    whether it is a fault (``"fault": true|false``, as fitted scenarios do) is taken
    at its word.
    """
    scenario = as_scenario(scenario)
    if scenario is None:
        return []
    services = SERVICES if service is None else (service,)
    baselines = {name: baseline_phase(scenario, name) for name in services}
    names = []
    for phase in scenario.phases:
        if phase.fault is not None:
            if phase.fault:
                names.append(phase.name)
            continue
        for name in services:
            profile, base = phase.profile(name), baselines[name]
            if (
                profile.mode != "up"
                or _effective(profile) != _effective(base.profile(name))
                or (profile.max_concurrency is not None and phase.load != base.load)
            ):
                names.append(phase.name)
                break
    return names


def phase_windows(
    scenario: Any, *, service: str | None = None, fault_phases: Iterable[str] | None = None
) -> list[Window]:
    """The scenario's phases as time windows, each marked fault or not.

    `fault_phases` (phase names) overrides `fault_phase_names(scenario, service)`.
    """
    scenario = as_scenario(scenario)
    if scenario is None:
        raise AnalysisError("phase windows need a scenario")
    faults = set(fault_phase_names(scenario, service) if fault_phases is None else fault_phases)
    return [
        Window(phase.name, start, start + phase.duration_s, phase.name in faults)
        for start, phase in zip(scenario.phase_starts, scenario.phases, strict=True)
    ]


def as_scenario(scenario: Any) -> Scenario | None:
    """A `Scenario` from a Scenario, a shipped name, a path or a dict (None stays None);
    `AnalysisError` for anything unreadable."""
    if scenario is None or isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, (str, Path, Mapping)):
        try:
            return resolve_scenario(scenario)
        except ScenarioError as exc:
            raise AnalysisError(f"bad scenario: {exc}") from None
    raise AnalysisError(f"scenario must be a Scenario, a name, a path or a dict, got {_shown(scenario)}")


def _episodes(windows: Sequence[Window]) -> list[tuple[float, float, int, int]]:
    """Runs of consecutive fault windows: (start, end, first index, last index)."""
    found: list[tuple[float, float, int, int]] = []
    for i, window in enumerate(windows):
        if not window.fault:
            continue
        if found and found[-1][3] == i - 1:
            start, _, first, _ = found[-1]
            found[-1] = (start, window.end, first, i)
        else:
            found.append((window.start, window.end, i, i))
    return found


# --- recorded runs ----------------------------------------------------------------------


def played_scenario(run: Any) -> Scenario | None:
    """The scenario a recorded run played, with the durations it was played at.

    `run` is a `cblab.runs.Run` (or its `RunMeta`). The scenario comes from
    run.json: its `spec`, else the shipped scenario of its `name`; every phase
    is scaled by `extra.time_scale` (a live recording plays phases faster).
    None when the run records no scenario. Raises `AnalysisError` saying why
    when it names one that cannot be read.
    """
    meta = getattr(run, "meta", run)
    recorded = getattr(meta, "scenario", None)
    if recorded is None:
        return None
    if not isinstance(recorded, Mapping):
        raise AnalysisError(f"run.json 'scenario' must be an object, got {_shown(recorded)}")
    name, spec = recorded.get("name"), recorded.get("spec")
    try:
        if isinstance(spec, Mapping):  # a spec without a name has the run's
            scenario = Scenario.from_dict({"name": name, **spec})
        elif spec is None and isinstance(name, str) and name:
            scenario = Scenario.named(name)
        else:
            raise ScenarioError(f"'spec' must be a scenario object or null, got {_shown(spec)}")
    except ScenarioError as exc:
        raise AnalysisError(f"the run's scenario {_shown(name)} cannot be read: {exc}") from None
    extra = getattr(meta, "extra", None) or {}
    time_scale = extra.get("time_scale", 1.0)
    if isinstance(time_scale, bool) or not isinstance(time_scale, (int, float)) or not (
        math.isfinite(time_scale) and time_scale > 0
    ):
        raise AnalysisError(f"run.json extra.time_scale must be a number > 0, got {_shown(time_scale)}")
    return scenario if time_scale == 1 else scenario.scaled(time_scale)


def phase_labels(times: Iterable[Any], scenario: Any) -> list[str | None]:
    """The name of the phase in force at each time (seconds since the scenario started).

    None for a time before 0 or missing; past the end, the last phase (it stays
    in force, as `Scenario.phase_at` says). Recorders label rows with this.
    """
    plan = as_scenario(scenario)
    if plan is None:
        raise AnalysisError("phase labels need a scenario")
    starts = plan.phase_starts
    names = [phase.name for phase in plan.phases]
    labels: list[str | None] = []
    for t in times:
        if isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) and t >= 0:
            labels.append(names[bisect.bisect_right(starts, t) - 1])
        else:
            labels.append(None)
    return labels
