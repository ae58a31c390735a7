"""Scenarios: a timeline of fault phases, played live by the backend and on
virtual time by the simulator.

File format (JSON, `data/scenarios/<name>.json`)::

    {
      "name": "outage-and-recovery",
      "description": "free text",
      "phases": [
        {
          "name": "healthy",
          "duration_s": 30,
          "faults": {"users": {<fault profile>}, "orders": {<fault profile>}},
          "load": {"rate_per_s": 20, "arrivals": "poisson"}
        }
      ]
    }

A service left out of a phase's `faults` is healthy for that phase (`HEALTHY`).
`load` is optional; the backend ignores it (the load generator and simulator use it).
Unknown keys are errors at every level.

Pure apart from `Scenario.load`, which reads one file.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TypeVar

from cblab.strict_json import read_json_file

from .paths import data_dir
from .profile import HEALTHY, FaultProfile, ProfileError

__all__ = [
    "ARRIVALS",
    "SERVICES",
    "LoadSpec",
    "Phase",
    "Scenario",
    "ScenarioError",
    "check_fields",
    "load_scenario_file",
    "scenario_header",
    "UnknownServiceError",
    "available_scenarios",
    "resolve_scenario",
    "scenario_file",
    "scenarios_dir",
]

SERVICES: tuple[str, ...] = ("users", "orders")
ARRIVALS: tuple[str, ...] = ("poisson", "constant")

_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


class ScenarioError(ValueError):
    """An invalid scenario; the message names the phase and the field."""


class UnknownServiceError(LookupError):
    """A service name that is not one of `SERVICES`."""

    def __init__(self, name: object) -> None:
        super().__init__(f"unknown service {name!r}; services: {', '.join(SERVICES)}")


# Bounds: a phase longer than a month, or a scenario longer than a year, is a
# mistake; unbounded sums overflow to inf (and inf is not JSON).
MAX_PHASE_S = 30 * 86_400.0
MAX_TOTAL_S = 365 * 86_400.0
MAX_RATE_PER_S = 100_000.0


def _finite(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ScenarioError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def check_fields(data: Any, known: tuple[str, ...], where: str) -> Mapping[str, Any]:
    """`data` as an object with only `known` fields, else a ScenarioError naming `where`."""
    if not isinstance(data, Mapping):
        raise ScenarioError(f"{where} must be an object, got {data!r}")
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ScenarioError(
            f"{where}: unknown field {unknown[0]!r}; known fields: {', '.join(known)}"
        )
    return data


def scenario_header(data: Any) -> tuple[str, str, list[Any]]:
    """A scenario object's name, description and raw (non-empty) phase list."""
    data = check_fields(data, ("name", "description", "phases"), "scenario")
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ScenarioError(f"scenario name must be a non-empty string, got {name!r}")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ScenarioError(f"scenario description must be a string, got {description!r}")
    phases = data.get("phases")
    if not isinstance(phases, list) or not phases:
        raise ScenarioError(f"scenario phases must be a non-empty list, got {phases!r}")
    return name, description, phases


_T = TypeVar("_T")


def load_scenario_file(path: Path, parse: Callable[[Any], _T]) -> _T:
    """Read a JSON scenario file and `parse` it; errors name the file. The file is
    bounded (`read_json_file`): a FIFO, a huge file or JSON nested thousands deep
    is one clear error, not a hang or a RecursionError."""
    try:
        data = read_json_file(path)
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario file {str(path)!r}: "
                            f"{exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path.name}: invalid JSON: {exc}") from None
    except ValueError as exc:
        raise ScenarioError(f"{path.name}: {exc}") from None
    try:
        return parse(data)
    except ScenarioError as exc:
        raise ScenarioError(f"{path.name}: {exc}") from None


@dataclass(frozen=True)
class LoadSpec:
    """Offered load during a phase: `rate_per_s` arrivals, Poisson or evenly spaced."""

    rate_per_s: float
    arrivals: Literal["poisson", "constant"] = "poisson"

    @classmethod
    def from_dict(cls, data: Any, where: str = "load") -> LoadSpec:
        data = check_fields(data, ("rate_per_s", "arrivals"), where)
        if "rate_per_s" not in data:
            raise ScenarioError(f"{where}.rate_per_s is required")
        rate = _finite(data["rate_per_s"], f"{where}.rate_per_s")
        if not 0 <= rate <= MAX_RATE_PER_S:
            raise ScenarioError(
                f"{where}.rate_per_s must be >= 0 (at most {MAX_RATE_PER_S:g}), "
                f"got {data['rate_per_s']!r}"
            )
        arrivals = data.get("arrivals", "poisson")
        if arrivals not in ARRIVALS:
            raise ScenarioError(
                f"{where}.arrivals must be one of {', '.join(ARRIVALS)}, got {arrivals!r}"
            )
        return cls(rate, arrivals)

    def to_dict(self) -> dict[str, Any]:
        return {"rate_per_s": self.rate_per_s, "arrivals": self.arrivals}


@dataclass(frozen=True, eq=False)
class Phase:
    """One stretch of time with fixed fault profiles (one per service)."""

    name: str
    duration_s: float
    faults: Mapping[str, FaultProfile]
    load: LoadSpec | None = None
    #: Whether this phase is a fault (an outage to detect and recover from), when the
    #: scenario says so; None: analysis decides by comparing it with the baseline phase
    #: (`cblab.analysis.fault_phase_names`). A fitted scenario says so: its healthy
    #: phases differ a little from each other, which is measurement, not a fault.
    fault: bool | None = None

    def profile(self, service: str) -> FaultProfile:
        """The profile of `service` in this phase (healthy if the phase left it out)."""
        return self.faults.get(service, HEALTHY)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Phase):
            return NotImplemented
        return (
            self.name == other.name
            and self.duration_s == other.duration_s
            and all(self.profile(s) == other.profile(s) for s in SERVICES)
            and self.load == other.load
            and self.fault == other.fault
        )

    __hash__ = None  # type: ignore[assignment]

    @classmethod
    def from_dict(cls, data: Any, where: str) -> Phase:
        data = check_fields(data, ("name", "duration_s", "faults", "load", "fault"), where)
        name = data.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ScenarioError(f"{where}: name must be a non-empty string, got {name!r}")
        where = f"{where} ({name!r})"
        if "duration_s" not in data:
            raise ScenarioError(f"{where}: duration_s is required")
        duration = _finite(data["duration_s"], f"{where}: duration_s")
        if not 0 < duration <= MAX_PHASE_S:
            raise ScenarioError(
                f"{where}: duration_s must be > 0 and at most {MAX_PHASE_S:g} (30 days), "
                f"got {data['duration_s']!r}"
            )
        raw_faults = check_fields(data.get("faults", {}), SERVICES, f"{where}: faults")
        faults: dict[str, FaultProfile] = {}
        for service, profile in raw_faults.items():
            try:
                faults[service] = FaultProfile.from_dict(profile)
            except ProfileError as exc:
                raise ScenarioError(f"{where}: faults.{service}: {exc}") from None
        load = data.get("load")
        if load is not None:
            load = LoadSpec.from_dict(load, f"{where}: load")
        fault = data.get("fault")
        if fault is not None and not isinstance(fault, bool):
            raise ScenarioError(f"{where}: fault must be true, false or absent, got {fault!r}")
        return cls(name, duration, MappingProxyType(faults), load, fault)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "duration_s": self.duration_s,
            "faults": {
                service: self.profile(service).to_dict()
                for service in SERVICES
                if self.profile(service) != HEALTHY
            },
        }
        if self.load is not None:
            data["load"] = self.load.to_dict()
        if self.fault is not None:
            data["fault"] = self.fault
        return data


@dataclass(frozen=True, eq=True)
class Scenario:
    """A named timeline of phases, played back to back from t = 0."""

    name: str
    description: str
    phases: tuple[Phase, ...]

    __hash__ = None  # type: ignore[assignment]

    @property
    def phase_starts(self) -> tuple[float, ...]:
        """Start time of each phase, seconds from the scenario's start."""
        starts, t = [], 0.0
        for phase in self.phases:
            starts.append(t)
            t += phase.duration_s
        return tuple(starts)

    @property
    def total_duration_s(self) -> float:
        return sum(phase.duration_s for phase in self.phases)

    def phase_at(self, t: float) -> tuple[int, Phase]:
        """The phase in force at `t` seconds; past the end, the last phase (it stays)."""
        if t < 0:
            raise ValueError(f"t must be >= 0, got {t!r}")
        index = bisect.bisect_right(self.phase_starts, t) - 1
        return index, self.phases[index]

    def scaled(self, time_scale: float) -> Scenario:
        """The same scenario with every duration multiplied by `time_scale`.

        Only durations change: rates, latencies and Retry-After stay as they are.
        """
        if (
            isinstance(time_scale, bool)
            or not isinstance(time_scale, (int, float))
            or not (math.isfinite(time_scale) and time_scale > 0)
        ):
            raise ScenarioError(f"time_scale must be a finite number > 0, got {time_scale!r}")
        if self.total_duration_s * time_scale > MAX_TOTAL_S:
            raise ScenarioError(
                f"time_scale {time_scale:g} makes the scenario last "
                f"{self.total_duration_s * time_scale:g} s, more than {MAX_TOTAL_S:g} (a year)"
            )
        phases = tuple(
            Phase(p.name, p.duration_s * time_scale, p.faults, p.load, p.fault)
            for p in self.phases
        )
        return Scenario(self.name, self.description, phases)

    @classmethod
    def from_dict(cls, data: Any) -> Scenario:
        name, description, phases = scenario_header(data)
        parsed = tuple(Phase.from_dict(phase, f"phase {i}") for i, phase in enumerate(phases))
        total = sum(phase.duration_s for phase in parsed)
        if total > MAX_TOTAL_S:
            raise ScenarioError(
                f"scenario {name!r} lasts {total:g} s in all, more than {MAX_TOTAL_S:g} (a year)"
            )
        return cls(name, description, parsed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "phases": [phase.to_dict() for phase in self.phases],
        }

    @classmethod
    def load(cls, path_or_name: str | Path) -> Scenario:
        """Load a scenario file, or a bare name from `data/scenarios/`."""
        return cls._load_file(_resolve(path_or_name))

    @classmethod
    def named(cls, name: str) -> Scenario:
        """Load a shipped scenario by bare name only (never a path: safe for remote input)."""
        return cls._load_file(_shipped(name))

    @classmethod
    def _load_file(cls, path: Path) -> Scenario:
        return load_scenario_file(path, cls.from_dict)


def scenarios_dir() -> Path:
    return data_dir() / "scenarios"


def available_scenarios() -> list[str]:
    """Names of the scenarios shipped in `data/scenarios/`."""
    return sorted(path.stem for path in scenarios_dir().glob("*.json"))


def scenario_file(path_or_name: str | Path, *, shipped_only: bool = False) -> Path:
    """A shipped scenario's file by bare name, or a path (`shipped_only`: names only,
    never a path: for remote input). ScenarioError for an unknown or invalid name."""
    if shipped_only:
        return _shipped(path_or_name)  # type: ignore[arg-type]  # it refuses non-names
    return _resolve(path_or_name)


def _resolve(path_or_name: str | Path) -> Path:
    if isinstance(path_or_name, Path):
        return path_or_name
    text = str(path_or_name)
    if "/" in text or "\\" in text or text.endswith(".json"):
        return Path(text)
    return _shipped(text)


def _shipped(name: str) -> Path:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise ScenarioError(f"invalid scenario name {name!r}")
    path = scenarios_dir() / f"{name}.json"
    if not path.is_file():
        known = ", ".join(available_scenarios()) or "none"
        raise ScenarioError(f"unknown scenario {name!r}; available: {known}")
    return path


def resolve_scenario(scenario: Scenario | str | Path | Mapping[str, Any]) -> Scenario:
    """A `Scenario` from a Scenario, a shipped name, a file path or a JSON-shaped dict.

    Raises ScenarioError with a clear message for anything else.
    """
    if isinstance(scenario, Scenario):
        return scenario
    if isinstance(scenario, (str, Path)):
        return Scenario.load(scenario)
    if isinstance(scenario, Mapping):
        return Scenario.from_dict(dict(scenario))
    raise ScenarioError(
        f"scenario must be a Scenario, a scenario name, a path or a dict, got {scenario!r}"
    )
