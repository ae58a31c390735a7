"""The live lab's controls as data: one table of specs, no widgets.

`LabSession` uses the table to check and route a value (a fault for the backend,
a breaker setting for the server, the load's rate); the view
(`cblab.lab.live`) builds every widget from the same table with one builder.
Adding a control is one `ControlSpec` line (plus, for a new kind of effect, one
branch in `LabSession`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BREAKER_FIELDS",
    "CONTROLS",
    "CONTROL_NAMES",
    "FAULT_FIELDS",
    "ControlSpec",
    "check_value",
    "spec",
]


@dataclass(frozen=True, slots=True)
class ControlSpec:
    """One control: what it changes (`group`), its range and how it reads."""

    name: str
    label: str  # what the person reads beside the control
    group: str  # "backend" (fault profile), "load" (the generator), "breaker" (server admin)
    kind: str  # "int", "float" or "choice"
    low: float = 0.0
    high: float = 0.0
    step: float = 1.0
    options: tuple[str, ...] = ()
    tooltips: tuple[str, ...] = ()
    readout_format: str = ""


CONTROLS: tuple[ControlSpec, ...] = (
    ControlSpec("error_rate", "backend error rate (%)", "backend", "int", 0, 100, 5),
    ControlSpec("latency_ms", "backend latency (ms)", "backend", "int", 0, 3000, 10),
    ControlSpec(
        "outage", "backend", "backend", "choice", options=("up", "down", "hang"),
        tooltips=("healthy", "refuses connections", "accepts and never answers"),
    ),
    ControlSpec("rate", "requests per second", "load", "int", 0, 100, 1),
    ControlSpec("failure_threshold", "failure_threshold", "breaker", "int", 1, 20, 1),
    ControlSpec("timeout", "timeout (s)", "breaker", "float", 0.5, 60.0, 0.5, readout_format=".1f"),
    ControlSpec("half_open_max_calls", "half_open_max_calls", "breaker", "int", 1, 10, 1),
    ControlSpec("success_threshold", "success_threshold", "breaker", "int", 1, 10, 1),
)

#: Every control a live lab can show, in display order.
CONTROL_NAMES: tuple[str, ...] = tuple(c.name for c in CONTROLS)
FAULT_FIELDS: tuple[str, ...] = tuple(c.name for c in CONTROLS if c.group == "backend")
BREAKER_FIELDS: tuple[str, ...] = tuple(c.name for c in CONTROLS if c.group == "breaker")
_BY_NAME = {c.name: c for c in CONTROLS}


def spec(name: str) -> ControlSpec:
    """The spec of control `name`; a KeyError names the known controls."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no control {name!r}; known: {', '.join(CONTROL_NAMES)}") from None


def check_value(name: str, value: Any) -> Any:
    """`value` as control `name` holds it (an int slider gets an int), or a ValueError
    naming the control and its range."""
    s = spec(name)
    if s.kind == "choice":
        if value not in s.options:
            raise ValueError(f"{name} must be one of {', '.join(s.options)}, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number, got {value!r}")
    if not s.low <= value <= s.high:
        raise ValueError(f"{name} must be between {s.low:g} and {s.high:g}, got {value!r}")
    return round(value) if s.kind == "int" else float(value)


def select(names: Sequence[str]) -> list[str]:
    """`names` in display order; unknown names are refused."""
    unknown = set(names) - set(CONTROL_NAMES)
    if unknown:
        raise ValueError(f"unknown control(s) {sorted(unknown)}; known: {CONTROL_NAMES}")
    return [n for n in CONTROL_NAMES if n in names]
