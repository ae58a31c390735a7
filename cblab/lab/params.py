"""A notebook's parameters, read from environment variables for headless runs.

Interactive sessions use the defaults; CI, the browser tests and the benchmarks
set a few variables to keep runs short and deterministic:

==========================  ===========================================================
``CBLAB_RUN_SECONDS``       stop the live loop after this many seconds (0: run until Stop)
``CBLAB_WAIT``              1: the notebook's last cell waits for the loop to end, then
                            checks what happened (headless runs); 0: it returns at once
``CBLAB_UPDATE_HZ``         chart updates per second (default 5; 1 to 20)
``CBLAB_CHART_POINTS``      latency points the live chart draws, shared by its variants (default 250)
``CBLAB_WINDOW_SECONDS``    seconds of history the live charts show (default 60)
``CBLAB_RATE``              requests per second from the load generator (default 20)
``CBLAB_BREAKER_TIMEOUT``   the breaker's open timeout in seconds (default 5)
``CBLAB_FAILURE_THRESHOLD`` the breaker's failure_threshold (default 5)
``CBLAB_AUTOPILOT``         slider moves to play, "SECONDS:CONTROL=VALUE,...", e.g.
                            ``"2:error_rate=1,6:error_rate=0"`` (headless runs)
``CBLAB_EXPECT_STATES``     states the breaker must have visited by the end of a
                            waited-for run, e.g. ``"open,closed"``
``CBLAB_QUICK``             1: small sweeps and short simulations (notebook tests)
``CBLAB_SEED``              seed for the backend, the load and the simulations (default 1)
==========================  ===========================================================

Bad values are refused with a message naming the variable.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["AutopilotStep", "LabParams", "ParamError", "parse_autopilot"]


class ParamError(ValueError):
    """A parameter (environment variable) has a value that makes no sense."""


@dataclass(frozen=True, slots=True)
class AutopilotStep:
    at: float  # seconds after the loop started
    control: str  # a LiveLab control name: error_rate, latency_ms, outage, rate, ...
    value: Any


def parse_autopilot(text: str) -> tuple[AutopilotStep, ...]:
    """``"2:error_rate=1, 6:outage=up"`` -> steps in time order."""
    steps = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        when, sep, assignment = item.partition(":")
        control, eq, raw = assignment.partition("=")
        if not sep or not eq or not control.strip():
            raise ParamError(
                f"CBLAB_AUTOPILOT: each step must look like SECONDS:CONTROL=VALUE, got {item!r}")
        try:
            at = float(when)
        except ValueError:
            raise ParamError(f"CBLAB_AUTOPILOT: {when!r} is not a number of seconds") from None
        if not (math.isfinite(at) and at >= 0):
            raise ParamError(f"CBLAB_AUTOPILOT: time must be >= 0, got {when!r}")
        raw = raw.strip()
        value: Any
        try:
            value = float(raw)
        except ValueError:
            value = raw
        steps.append(AutopilotStep(at, control.strip(), value))
    return tuple(sorted(steps, key=lambda s: s.at))


def _number(env: Mapping[str, str], name: str, default: float, low: float, high: float) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ParamError(f"{name} must be a number, got {raw!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise ParamError(f"{name} must be between {low:g} and {high:g}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw in ("", "0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise ParamError(f"{name} must be 0 or 1, got {raw!r}")


#: field -> (environment variable, what it means), in the order a person reads them.
_DESCRIBED = {
    "run_seconds": ("CBLAB_RUN_SECONDS", "how long a live loop runs"),
    "wait": ("CBLAB_WAIT", "the last cell waits for the loop (headless runs)"),
    "update_hz": ("CBLAB_UPDATE_HZ", "live chart updates per second"),
    "chart_points": ("CBLAB_CHART_POINTS", "latency points on the live chart (shared by its variants)"),
    "window_s": ("CBLAB_WINDOW_SECONDS", "seconds of history the live charts show"),
    "rate": ("CBLAB_RATE", "requests per second from the load generator"),
    "breaker_timeout": ("CBLAB_BREAKER_TIMEOUT", "the breaker's open timeout (s)"),
    "failure_threshold": ("CBLAB_FAILURE_THRESHOLD", "failures that trip the breaker"),
    "autopilot": ("CBLAB_AUTOPILOT", "slider moves played by themselves"),
    "expect_states": ("CBLAB_EXPECT_STATES", "states a waited-for run must visit"),
    "quick": ("CBLAB_QUICK", "small sweeps and short simulations"),
    "seed": ("CBLAB_SEED", "seed of the backend, the load and the simulations"),
}


@dataclass(frozen=True)
class LabParams:
    """Live-lab and notebook parameters. `LabParams.from_env()` reads the variables."""

    run_seconds: float = 0.0  # 0: until Stop
    wait: bool = False
    # 5 updates/s of at most 250 latency points (all variants): what the browser draws
    # delays every click, and the kernel, the demo stack and Chromium share the
    # machine. bench_lab, 01 and 04 side by side: 4.0-4.6 redraws/s at 56-57 % of the
    # page's main thread at 6/s (CPU contended), 5.0 at 28-34 % at 5/s.
    update_hz: float = 5.0
    chart_points: int = 250
    window_s: float = 60.0
    rate: float = 20.0
    breaker_timeout: float = 5.0
    failure_threshold: int = 5
    autopilot: tuple[AutopilotStep, ...] = ()
    expect_states: frozenset[str] = field(default_factory=frozenset)
    quick: bool = False
    seed: int = 1

    def __post_init__(self) -> None:
        if not (math.isfinite(self.run_seconds) and self.run_seconds >= 0):
            raise ParamError(f"run_seconds must be >= 0, got {self.run_seconds!r}")
        if not 1 <= self.update_hz <= 20:
            raise ParamError(f"update_hz must be between 1 and 20, got {self.update_hz!r}")
        if not 20 <= self.chart_points <= 5000:
            raise ParamError(f"chart_points must be between 20 and 5000, got {self.chart_points!r}")
        if not self.window_s > 0:
            raise ParamError(f"window_s must be > 0, got {self.window_s!r}")
        unknown = set(self.expect_states) - {"closed", "open", "half_open"}
        if unknown:
            raise ParamError(f"expect_states: unknown state(s) {sorted(unknown)}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> LabParams:
        env = os.environ if env is None else env
        states = env.get("CBLAB_EXPECT_STATES", "")
        params = cls(
            run_seconds=_number(env, "CBLAB_RUN_SECONDS", 0.0, 0.0, 7 * 24 * 3600.0),
            wait=_flag(env, "CBLAB_WAIT"),
            update_hz=_number(env, "CBLAB_UPDATE_HZ", 5.0, 1.0, 20.0),
            chart_points=int(_number(env, "CBLAB_CHART_POINTS", 250, 20, 5000)),
            window_s=_number(env, "CBLAB_WINDOW_SECONDS", 60.0, 5.0, 3600.0),
            rate=_number(env, "CBLAB_RATE", 20.0, 0.0, 500.0),
            breaker_timeout=_number(env, "CBLAB_BREAKER_TIMEOUT", 5.0, 0.1, 600.0),
            failure_threshold=int(_number(env, "CBLAB_FAILURE_THRESHOLD", 5, 1, 100)),
            autopilot=parse_autopilot(env.get("CBLAB_AUTOPILOT", "")),
            expect_states=frozenset(s.strip() for s in states.split(",") if s.strip()),
            quick=_flag(env, "CBLAB_QUICK"),
            seed=int(_number(env, "CBLAB_SEED", 1, 0, 2**31 - 1)),
        )
        return replace(params, **overrides) if overrides else params

    def table(self) -> pd.DataFrame:
        """Every parameter with its value, environment variable and default."""
        import pandas as pd

        rows = []
        for name, (variable, meaning) in _DESCRIBED.items():
            value = getattr(self, name)
            if isinstance(value, frozenset):
                value = ", ".join(sorted(value)) or "–"
            elif isinstance(value, tuple):
                value = ", ".join(f"{s.at:g}: {s.control}={_shown(s.value)}" for s in value) or "–"
            elif isinstance(value, bool):
                value = "yes" if value else "no"
            elif isinstance(value, float) and name == "run_seconds" and value == 0:
                value = "until Stop"
            rows.append({"parameter": name, "value": value, "set by": variable,
                         "meaning": meaning})
        return pd.DataFrame(rows)

    def _repr_html_(self) -> str:
        from .tables import readable_table

        frame = self.table()
        frame["value"] = [str(v) if not isinstance(v, str) else v for v in frame["value"]]
        return str(readable_table(frame, caption="Parameters in effect").to_html())

    @property
    def headless(self) -> bool:
        """A bounded run whose end the notebook waits for (CI, benchmarks)."""
        return self.wait and self.run_seconds > 0


def _shown(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
