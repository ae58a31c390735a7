"""Key figures of a run, one row per variant, as the report tables show them.

Column names match `cblab.plots.tables.KPI_SPECS`, which says how each is shown
and which direction is better. The same views as the figures apply: latency and
success from the client's side, backend calls from the backend's side.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from cblab.plots import traces as tr

__all__ = ["KPI_COLUMNS", "fault_phases", "run_kpis", "variant_kpis"]

KPI_COLUMNS: tuple[str, ...] = (
    "calls",
    "success_rate",
    "failure_rate",
    "rejected_rate",
    "p50_latency_ms",
    "p95_latency_ms",
    "p99_latency_ms",
    "backend_calls",
    "backend_calls_in_faults",
    "peak_backend_rps",
    "trips",
    "time_open_s",
)

_FAILED = ("failure", "timeout")


def fault_phases(scenario: Mapping[str, Any] | None) -> set[str] | None:
    """Names of the scenario's phases with a fault on any service (None if unknown).

    A service is faulty in a phase when it is not "up", fails, resets or slows some
    requests, is capacity-limited, or has a latency other than in the first phase.
    """
    spec = scenario.get("spec") if isinstance(scenario, Mapping) else None
    phases = spec.get("phases") if isinstance(spec, Mapping) else None
    if not isinstance(phases, list) or not phases:
        return None
    first = phases[0].get("faults") if isinstance(phases[0], Mapping) else None
    baseline = first if isinstance(first, Mapping) else {}
    names = set()
    for phase in phases:
        if not isinstance(phase, Mapping):
            continue
        faults = phase.get("faults") or {}
        if not isinstance(faults, Mapping):
            continue
        for service, profile in faults.items():
            base = baseline.get(service) if isinstance(baseline.get(service), Mapping) else {}
            if isinstance(profile, Mapping) and _is_fault(profile, base):
                names.add(str(phase.get("name")))
    return names


def _is_fault(profile: Mapping[str, Any], first: Mapping[str, Any]) -> bool:
    if profile.get("mode", "up") != "up":
        return True
    for key in ("error_rate", "slow_fraction", "reset_rate"):
        value = profile.get(key) or 0
        if isinstance(value, (int, float)) and value > 0:
            return True
    if profile.get("max_concurrency") is not None:
        return True
    return profile.get("latency") != first.get("latency")


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


def variant_kpis(events: pd.DataFrame, *, faults: set[str] | None = None) -> pd.DataFrame:
    """One row per variant (index), one column per KPI in `KPI_COLUMNS`."""
    events = tr.as_events(events)
    client = tr.call_rows(events, tr.CLIENT_VIEW)
    backend = tr.call_rows(events, tr.BACKEND_VIEW)
    bands = tr.state_bands(events)
    variant_of_row = tr._labels(events["variant"], tr.NO_VARIANT)
    several = len(tr.variants_of(events)) > 1
    rows = {}
    for v in tr.variants_of(events):
        mine = client[client["variant_label"] == v]
        outcome = mine["outcome"]
        n = len(mine)
        latency = mine.loc[
            np.isfinite(mine["latency_s"].to_numpy()) & (outcome != "dropped").to_numpy(),
            "latency_s",
        ].to_numpy()
        latency_ms = latency * 1000.0
        theirs = backend[backend["variant_label"] == v]
        admitted = theirs[~theirs["outcome"].isin(list(tr.NOT_ADMITTED))]
        in_faults: float = float("nan")
        if faults is not None:
            in_faults = float(admitted["phase"].astype(object).isin(list(faults)).sum())
            if not admitted["phase"].notna().any():
                in_faults = float("nan")
        rates = tr.backend_rate_series(events[variant_of_row == v], 1.0, offered=False)
        peak = max((max(xy.y) for xy in rates.values()), default=float("nan"))
        state_rows = events[(variant_of_row == v) & (events["kind"] == "state")]
        has_breaker = state_rows.shape[0] > 0 or (
            events.loc[variant_of_row == v, "breaker"].notna().any()
        )
        prefix = f"{v} · " if several else ""
        open_s = 0.0
        for state in ("open", "half_open"):
            bars = bands.bars[state]
            open_s += sum(
                w for band, w in zip(bars.y, bars.x, strict=True) if band.startswith(prefix)
            )
        rows[v] = {
            "calls": n,
            "success_rate": outcome.isin(list(tr.SUCCESS_OUTCOMES)).mean() if n else np.nan,
            "failure_rate": outcome.isin(_FAILED).mean() if n else np.nan,
            "rejected_rate": (outcome == "rejected").mean() if n else np.nan,
            "p50_latency_ms": _percentile(latency_ms, 50),
            "p95_latency_ms": _percentile(latency_ms, 95),
            "p99_latency_ms": _percentile(latency_ms, 99),
            "backend_calls": len(admitted),
            "backend_calls_in_faults": in_faults,
            "peak_backend_rps": peak,
            "trips": int((state_rows["state_after"] == "open").sum()) if has_breaker else np.nan,
            "time_open_s": open_s if has_breaker else np.nan,
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(KPI_COLUMNS))
    if faults is None or frame["backend_calls_in_faults"].isna().all():
        frame = frame.drop(columns=["backend_calls_in_faults"])
    return frame


def run_kpis(run: Any) -> pd.DataFrame:
    """KPIs of a `cblab.runs.Run`, one row per variant."""
    return variant_kpis(run.events, faults=fault_phases(run.meta.scenario))
