"""Scenarios for the proxy: the backend's scenario files, faults keyed by tool.

The proxy reads the same files as the backend (`data/scenarios/<name>.json` or a
path). A phase's ``faults`` keys may be:

- a tool name, or ``"*"`` for every tool: the profile applies to it (an optional
  ``"error_as"`` key says how errors reach the client, see `cblab.proxy.faults`);
- a backend service (``users``, ``orders``, as in the shipped scenarios): mapped
  through `services`, by default ``{"users": "*"}`` (the users service's timeline
  plays on every tool; services not mapped are ignored and listed in `ignored`).

Durations, names and profiles are validated like the backend's (`ScenarioError`
naming the phase and the field); a tool the upstream lacks is refused when the
scenario is played.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cblab.faults.profile import ProfileError
from cblab.faults.scenario import (
    SERVICES,
    ScenarioError,
    check_fields,
    load_scenario_file,
    scenario_file,
    scenario_header,
)

from .faults import ALL_TOOLS, ToolFault, check_target

__all__ = ["DEFAULT_SERVICES", "ProxyPhase", "ProxyScenario"]

DEFAULT_SERVICES: dict[str, str] = {"users": ALL_TOOLS}


@dataclass(frozen=True)
class ProxyPhase:
    name: str
    duration_s: float
    faults: Mapping[str, ToolFault]


@dataclass(frozen=True)
class ProxyScenario:
    name: str
    description: str
    phases: tuple[ProxyPhase, ...]
    ignored: tuple[str, ...] = field(default=())

    @property
    def total_duration_s(self) -> float:
        return sum(phase.duration_s for phase in self.phases)

    @classmethod
    def from_dict(cls, data: Any, services: Mapping[str, str] | None = None) -> ProxyScenario:
        services = DEFAULT_SERVICES if services is None else services
        for service, target in services.items():
            if service not in SERVICES:
                raise ScenarioError(f"services: unknown service {service!r}; services: {', '.join(SERVICES)}")
            if not isinstance(target, str) or not target:
                raise ScenarioError(f"services.{service} must be a tool name or '*', got {target!r}")
        name, description, raw_phases = scenario_header(data)
        ignored: set[str] = set()
        phases = tuple(
            _phase(raw, f"phase {i}", services, ignored) for i, raw in enumerate(raw_phases)
        )
        return cls(name, description, phases, tuple(sorted(ignored)))

    @classmethod
    def load(cls, name_or_path: str | Path, services: Mapping[str, str] | None = None) -> ProxyScenario:
        """A shipped scenario by bare name, or a JSON file by path."""
        return load_scenario_file(scenario_file(name_or_path), lambda data: cls.from_dict(data, services))

    @classmethod
    def named(cls, name: str, services: Mapping[str, str] | None = None) -> ProxyScenario:
        """A shipped scenario by bare name only (never a path: safe for remote input)."""
        return cls.load(scenario_file(name, shipped_only=True), services)

    def tools(self) -> set[str]:
        """Every target named by some phase."""
        return {target for phase in self.phases for target in phase.faults}


def _phase(data: Any, where: str, services: Mapping[str, str], ignored: set[str]) -> ProxyPhase:
    data = check_fields(data, ("name", "duration_s", "faults", "load"), where)
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(f"{where}: name must be a non-empty string, got {name!r}")
    where = f"{where} ({name!r})"
    duration = data.get("duration_s")
    if (
        isinstance(duration, bool)
        or not isinstance(duration, (int, float))
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise ScenarioError(f"{where}: duration_s must be a finite number > 0, got {duration!r}")
    raw = data.get("faults", {})
    if not isinstance(raw, Mapping):
        raise ScenarioError(f"{where}: faults must be an object, got {raw!r}")
    faults: dict[str, ToolFault] = {}
    for key, profile in raw.items():
        if not isinstance(key, str) or not key:
            raise ScenarioError(f"{where}: faults keys must be tool names or '*', got {key!r}")
        target = key
        if key in SERVICES:
            if key not in services:
                ignored.add(key)
                continue
            target = services[key]
        if target in faults:
            raise ScenarioError(f"{where}: faults name {target!r} twice (after mapping services)")
        try:
            fault = ToolFault.from_dict(profile)
            check_target(target, fault)
        except ProfileError as exc:
            raise ScenarioError(f"{where}: faults.{key}: {exc}") from None
        faults[target] = fault
    return ProxyPhase(name, float(duration), faults)
