"""`simulate()`: play a scenario on virtual time; `SimRun`: its events, as rows or a frame."""

from __future__ import annotations

import bisect
import os
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cblab import CircuitBreakerConfig, CircuitState, Outcome
from cblab.demo import SERVICE_ROUTES
from cblab.faults.scenario import Scenario
from cblab.schema import EVENT_COLUMNS, EVENT_DTYPES

from .bounds import DEFAULT_MAX_CALLS, WorkLimitError, check_limit, expected_calls
from .engine import gc_paused
from .model import ROW_FIELDS, Draws, Simulation
from .workload import load_phases, resolve_scenario

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DEFAULT_DEADLINE_S", "SOURCE", "SimRun", "simulate", "simulate_pair",
           "write_events_csv"]

SOURCE = "sim"
#: The whole-call deadline the simulated server gives each backend call, seconds.
DEFAULT_DEADLINE_S = 2.0

_TEXT: dict[Any, str | None] = {member: member.value for member in (*Outcome, *CircuitState)}
_TEXT[None] = None


def _config(config: CircuitBreakerConfig | Mapping[str, Any] | None) -> CircuitBreakerConfig:
    if config is None:
        return CircuitBreakerConfig()
    if isinstance(config, CircuitBreakerConfig):
        return config
    if isinstance(config, Mapping):
        return CircuitBreakerConfig.from_dict(dict(config))
    raise TypeError(f"config must be a CircuitBreakerConfig, a dict or None, got {config!r}")


@dataclass(eq=False)
class SimRun:
    """One simulated run. `events` are schema rows (`cblab.schema.EVENT_COLUMNS`).

    Rows are stored compactly while simulating; `events`, `columns()` and
    `to_frame()` build the schema form on demand.
    """

    scenario: Scenario
    config: CircuitBreakerConfig
    seed: int | str
    protected: bool
    variant: str
    service: str
    breaker: str
    tool: str
    deadline_s: float
    calls: int  # calls offered (arrivals)
    wall_s: float  # wall-clock seconds the simulation took
    counts: dict[str, int] = field(repr=False)  # the breaker's own counters at the end
    rows: list[tuple[Any, ...]] = field(repr=False)  # compact rows, `ROW_FIELDS` layout

    @property
    def duration_s(self) -> float:
        return self.scenario.total_duration_s

    def __len__(self) -> int:
        return len(self.rows)

    def columns(self) -> dict[str, list[Any]]:
        """The events column by column, in `EVENT_COLUMNS` order (all plain Python values)."""
        with gc_paused():
            return self._columns(with_phase=True)

    def _columns(self, *, with_phase: bool, start: int = 0, stop: int | None = None,
                 first_seq: int = 1) -> dict[str, Any]:
        rows = self.rows[start:stop] if start or stop is not None else self.rows
        n = len(rows)
        if n:
            kinds, ts, latencies, outcomes, states, afters, errors, reasons, gens = (
                list(column) for column in zip(*rows, strict=True)
            )
        else:
            kinds, ts, latencies, outcomes, states, afters, errors, reasons, gens = (
                [] for _ in ROW_FIELDS
            )
        text = _TEXT
        starts = list(self.scenario.phase_starts)
        names = [phase.name for phase in self.scenario.phases]
        right = bisect.bisect_right
        tool = self.tool
        return {
            "seq": list(range(first_seq, first_seq + n)),
            "kind": kinds,
            "t": ts,
            "source": [SOURCE] * n,
            "variant": [self.variant] * n,
            "breaker": [self.breaker] * n,
            "tool": [tool if kind == "call" else None for kind in kinds],
            "outcome": [text[o] for o in outcomes],
            "latency": latencies,
            "state": [text[s] for s in states],
            "state_after": [text[s] for s in afters],
            "error_type": errors,
            "reason": reasons,
            "generation": gens,
            "phase": [names[max(right(starts, t) - 1, 0)] for t in ts] if with_phase else None,
        }

    @cached_property
    def events(self) -> list[dict[str, Any]]:
        """Schema rows (dicts with every `EVENT_COLUMNS` key), in `seq` order."""
        columns = self.columns()
        return [dict(zip(EVENT_COLUMNS, values, strict=True))
                for values in zip(*(columns[c] for c in EVENT_COLUMNS), strict=True)]

    def to_frame(self) -> pd.DataFrame:
        """The events as a DataFrame with `EVENT_COLUMNS` (what `cblab.analysis` reads)."""
        return self._frame()

    def _frame(self, start: int = 0, stop: int | None = None, first_seq: int = 1) -> pd.DataFrame:
        import numpy as np
        import pandas as pd

        with gc_paused():
            columns = self._columns(with_phase=False, start=start, stop=stop,
                                    first_seq=first_seq)
            starts = np.asarray(self.scenario.phase_starts, dtype="float64")
            names = np.asarray([phase.name for phase in self.scenario.phases], dtype=object)
            at = np.searchsorted(starts, np.asarray(columns["t"], dtype="float64"), side="right")
            columns["phase"] = names[np.maximum(at - 1, 0)]
            frame = pd.DataFrame(columns, columns=list(EVENT_COLUMNS))
            return frame.astype(EVENT_DTYPES)

    def to_csv(self, path: str | Path) -> None:
        write_events_csv([self], path)


#: Rows per chunk when writing CSV: a DataFrame of all rows would cost ~4x the run itself.
CSV_CHUNK_ROWS = 50_000


def write_events_csv(runs: Sequence[SimRun], path: str | Path, *,
                     chunk_rows: int = CSV_CHUNK_ROWS) -> int:
    """Write the runs' events as one CSV, `seq` numbered 1.. across them; returns the rows.

    Streamed chunk by chunk (memory stays near one chunk's frame, whatever the run's
    size), into a temporary file renamed at the end: an error leaves no partial file.
    """
    path = Path(path)
    # opened with "x" (not mkstemp, which makes it 0600): the file gets the usual mode
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    written = 0
    try:
        with open(tmp, "x", encoding="utf-8", newline="") as handle:
            chunks = ((run, start) for run in runs
                      for start in range(0, len(run.rows), chunk_rows))
            for run, start in chunks:
                frame = run._frame(start, start + chunk_rows, first_seq=written + 1)
                frame.to_csv(handle, index=False, header=written == 0)
                written += len(frame)
            if written == 0:  # no events: the header alone
                handle.write(",".join(EVENT_COLUMNS) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return written


def simulate(
    scenario: Scenario | str | Path | Mapping[str, Any],
    config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
    *,
    seed: int | str,
    deadline_s: float = DEFAULT_DEADLINE_S,
    protected: bool = True,
    rate: float | None = None,
    arrivals: str | None = None,
    service: str = "users",
    variant: str | None = None,
    time_scale: float = 1.0,
    max_calls: int = DEFAULT_MAX_CALLS,
    draws: Draws | None = None,
) -> SimRun:
    """Play `scenario` on virtual time through a real `CircuitBreaker`.

    scenario    a `Scenario`, a shipped scenario name, a JSON file path or a dict
    config      the breaker's configuration (a dict goes through `from_dict`)
    seed        same seed, same events; arrivals and backend decisions each have
                their own RNG, so protected and unprotected runs share arrivals
    deadline_s  the whole-call deadline of each backend call (as the demo server's)
    protected   False: the same calls through a `disable()`d breaker (metrics only)
    rate        calls per second for every phase, overriding the scenario's load
    arrivals    "poisson" or "constant", overriding the scenario's
    service     the backend service called ("users" via breaker "github", tool
                "github_user"; "orders" via "database", "order_lookup")
    variant     the rows' `variant` (default "protected" / "unprotected")
    time_scale  multiply every phase duration (`Scenario.scaled`)
    max_calls   refuse (WorkLimitError, a ValueError) before simulating when the
                expected calls (rate x duration, `cblab.sim.bounds`) exceed it
    draws       the seed's arrivals and backend plans (`Draws`), shared by runs of
                the same scenario, load, seed and service (a ValueError otherwise);
                default: made for this run. Results are the same either way
    """
    scenario = resolve_scenario(scenario)
    if time_scale != 1.0:
        scenario = scenario.scaled(time_scale)
    config = _config(config)
    if not isinstance(seed, (int, str)) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or a str, got {seed!r}")
    if service not in SERVICE_ROUTES:
        raise ValueError(f"unknown service {service!r}; services: {', '.join(SERVICE_ROUTES)}")
    if variant is None:
        variant = "protected" if protected else "unprotected"
    elif not isinstance(variant, str) or not variant:
        raise ValueError(f"variant must be a non-empty string, got {variant!r}")
    phases = load_phases(scenario, rate=rate, arrivals=arrivals)
    calls = expected_calls(phases)
    if calls > check_limit("max_calls", max_calls):
        raise WorkLimitError(f"a run of {scenario.name!r} expects {{amount}} simulated calls "
                             "(rate x duration)",
                             calls, "max_calls", max_calls)
    sim = Simulation(scenario, phases, config, seed=seed, deadline_s=deadline_s,
                     protected=protected, service=service, draws=draws)
    with gc_paused():
        started = time.perf_counter()
        rows = sim.run()
        wall = time.perf_counter() - started
    status = sim.breaker.get_status()
    counts = {key: status[key] for key in (
        "calls", "successes", "failures", "slow_calls", "rejected", "excluded", "cancelled",
        "late", "trips", "probe_failures", "trial_timeouts")}
    return SimRun(
        scenario=scenario, config=config, seed=seed, protected=protected, variant=variant,
        service=service, breaker=sim.breaker_name, tool=sim.tool, deadline_s=sim.deadline,
        calls=sim.calls, wall_s=wall, counts=counts, rows=rows,
    )


def simulate_pair(
    scenario: Scenario | str | Path | Mapping[str, Any],
    config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> tuple[SimRun, SimRun]:
    """The same scenario and seed, protected and unprotected: `(protected, unprotected)`."""
    kwargs.pop("variant", None)
    kwargs.pop("protected", None)
    return (simulate(scenario, config, protected=True, **kwargs),
            simulate(scenario, config, protected=False, **kwargs))
