"""Key figures of a run, one row per variant, as the report tables show them.

`run_kpis` uses `cblab.analysis` (its KPI definitions are in
`cblab.analysis.kpis`), applied per variant to the caller's view of the calls
(the load generator's rows when a live run has them, as in the figures) plus the
breaker's state changes. Should the analysis refuse a run, `basic_kpis` (a few
figures computed here) stand in and the table says so.

Column names match `cblab.plots.tables.KPI_SPECS`, which says how each is shown
and which direction is better.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from cblab.plots import traces as tr

__all__ = [
    "BASIC_KPI_COLUMNS",
    "REPORT_KPIS",
    "analysis_kpis",
    "fault_phases",
    "run_kpis",
    "scaled_scenario",
    "unprotected_variants",
    "variant_kpis",
]

BASIC_KPI_COLUMNS: tuple[str, ...] = (
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
    "time_not_closed_s",
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


def variant_kpis(
    events: pd.DataFrame,
    *,
    faults: set[str] | None = None,
    unprotected: Iterable[str] = (),
) -> pd.DataFrame:
    """Basic KPIs: one row per variant (index), one column per `BASIC_KPI_COLUMNS`.

    `faults`: names of the phases with faults (`fault_phases`); without it the
    "backend calls during faults" column is left out. Variants in `unprotected`
    have no breaker KPIs (trips, time not closed), whatever their rows say.
    """
    unprotected = {str(v) for v in unprotected}
    events = tr.as_events(events)
    client = tr.call_rows(events, tr.CLIENT_VIEW)
    backend = tr.call_rows(events, tr.BACKEND_VIEW)
    bands = tr.state_bands(events, unprotected=unprotected)
    variant_of_row = (
        events["variant"].astype(object).where(events["variant"].notna(), tr.NO_VARIANT)
    )
    variants = tr.variants_of(events)
    several = len(variants) > 1
    rows = {}
    for v in variants:
        mine = client[client["variant_label"] == v]
        outcome = mine["outcome"]
        n = len(mine)
        finite = np.isfinite(mine["latency_s"].to_numpy()) & (outcome != "dropped").to_numpy()
        latency_ms = mine["latency_s"].to_numpy()[finite] * 1000.0
        theirs = backend[backend["variant_label"] == v]
        admitted = theirs[~theirs["outcome"].isin(list(tr.NOT_ADMITTED))]
        in_faults = float("nan")
        if faults is not None and admitted["phase"].notna().any():
            in_faults = float(admitted["phase"].astype(object).isin(list(faults)).sum())
        own = events[(variant_of_row == v).to_numpy()]
        rates = tr.backend_rate_series(own, 1.0, offered=False)
        peak = max((max(xy.y) for xy in rates.values()), default=float("nan"))
        changes = own[own["kind"] == "state"]
        has_breaker = v not in unprotected and (
            len(changes) > 0
            or bool((own["breaker"].notna() & own["state"].notna() & (own["kind"] == "call")).any())
        )
        prefix = f"{v} · " if several else ""
        not_closed = sum(
            w
            for state in ("open", "half_open")
            for band, w in zip(bands.bars[state].y, bands.bars[state].x, strict=True)
            if band.startswith(prefix)
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
            "trips": int((changes["state_after"] == "open").sum()) if has_breaker else np.nan,
            "time_not_closed_s": not_closed if has_breaker else np.nan,
        }
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(BASIC_KPI_COLUMNS))
    if frame["backend_calls_in_faults"].isna().all():
        frame = frame.drop(columns=["backend_calls_in_faults"])
    return frame


def unprotected_variants(run: Any) -> list[str]:
    """The variants of `run` that no breaker protects: every variant when its run.json
    configures no breaker (`config` empty), else those whose name starts with
    "unprotected" (the `cblab.stack.Stack` convention: such a server keeps its
    breakers disabled, for metrics only)."""
    if not run.meta.config:
        return list(run.variants)
    return [v for v in run.variants if v.startswith("unprotected")]


#: The KPIs a report shows, in order (`cblab.analysis` names; latencies in ms).
REPORT_KPIS: tuple[str, ...] = (
    "requested",
    "availability",
    "share_failed_fast",
    "failed",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "goodput_per_s",
    "admitted",
    "wasted",
    "trips",
    "probe_failures",
    "flaps",
    "time_open_s",
    "time_half_open_s",
    "detection_s",
    "recovery_s",
)
_BREAKER_KPIS = ("trips", "probe_failures", "flaps", "time_open_s", "time_half_open_s",
                 "detection_s", "recovery_s")  # fmt: skip


def scaled_scenario(run: Any) -> dict[str, Any] | None:
    """The scenario spec of `run` with the durations it was played at (a live run
    records `extra.time_scale`): from run.json, else the shipped scenario of that
    name; None when neither exists."""
    scenario = run.meta.scenario
    spec = scenario.get("spec") if isinstance(scenario, Mapping) else None
    if not isinstance(spec, Mapping) and isinstance(scenario, Mapping) and scenario.get("name"):
        spec = _shipped_scenario(str(scenario["name"]))
    if not isinstance(spec, Mapping):
        return None
    scale = run.meta.extra.get("time_scale", 1.0)
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or scale <= 0:
        scale = 1.0
    spec = dict(spec)
    phases = spec.get("phases")
    if scale != 1.0 and isinstance(phases, list):
        spec["phases"] = [
            {**p, "duration_s": p["duration_s"] * scale}
            if isinstance(p, Mapping) and isinstance(p.get("duration_s"), (int, float))
            else p
            for p in phases
        ]
    return spec


def _shipped_scenario(name: str) -> dict[str, Any] | None:
    """The shipped scenario called `name` (data/scenarios/), if there is one."""
    from cblab.backend.scenario import Scenario, ScenarioError

    try:
        return Scenario.named(name).to_dict()
    except (ScenarioError, OSError, ValueError):
        return None


def analysis_kpis(run: Any) -> pd.DataFrame:
    """`cblab.analysis` KPIs of `run`: one row per variant (per "variant · breaker"
    when a variant calls several breakers), `REPORT_KPIS` columns."""
    from cblab.analysis import run_kpis as analyse

    events = tr.as_events(run.events)
    spec = scaled_scenario(run)
    unprotected = set(unprotected_variants(run))
    variant = events["variant"].astype(object).where(events["variant"].notna(), tr.NO_VARIANT)
    rows: dict[str, dict[str, Any]] = {}
    for v in tr.variants_of(events):
        own = events[(variant == v).to_numpy()]
        calls = tr.call_rows(own, tr.CLIENT_VIEW)[list(own.columns)]
        changes = own[own["kind"] == "state"]
        if v in unprotected:
            changes = changes.iloc[:0]
            calls = calls.assign(state=None, state_after=None)
        # One run as the analysis sees it: the caller's calls, the breaker's changes.
        frame = pd.concat([calls, changes], ignore_index=True).assign(source="report")
        breakers = sorted({str(b) for b in frame["breaker"].dropna()})
        if len(breakers) <= 1:
            parts = [(v, frame)]
        else:  # one run per breaker; calls naming none (e.g. a status tool) go with each
            no_breaker = frame["breaker"].isna()
            parts = [(f"{v} · {b}", frame[(frame["breaker"] == b) | no_breaker]) for b in breakers]
        for label, part in parts:
            options: dict[str, Any] = {}
            if spec is None:
                options["duration_s"] = run.meta.duration_s
            figures = analyse(part, spec, **options)
            for q in ("p50", "p95", "p99"):
                value = figures.get(f"latency_{q}_s")
                figures[f"latency_{q}_ms"] = value * 1000.0 if value is not None else np.nan
            if v in unprotected:
                figures.update(dict.fromkeys(_BREAKER_KPIS, np.nan))
            rows[label] = {k: figures.get(k, np.nan) for k in REPORT_KPIS}
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(REPORT_KPIS))
    frame = frame.astype("float64")
    return frame.dropna(axis=1, how="all")


def run_kpis(run: Any) -> pd.DataFrame:
    """KPIs of a `cblab.runs.Run`, one row per variant.

    From `cblab.analysis` (`analysis_kpis`); when it cannot analyse the run, the
    basic KPIs instead, with `frame.attrs["note"]` saying why.
    """
    try:
        return analysis_kpis(run)
    except (ImportError, ValueError, KeyError) as exc:  # AnalysisError is a ValueError
        frame = basic_kpis(run)
        frame.attrs["note"] = f"cblab.analysis could not analyse this run ({exc}); basic KPIs shown"
        return frame


def basic_kpis(run: Any) -> pd.DataFrame:
    """The report's own minimal KPIs of a run, one row per variant (`BASIC_KPI_COLUMNS`)."""
    return variant_kpis(
        run.events, faults=fault_phases(run.meta.scenario), unprotected=unprotected_variants(run)
    )
