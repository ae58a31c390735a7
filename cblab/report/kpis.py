"""The report's KPI tables: `cblab.analysis` figures, one row per variant.

Every figure comes from `cblab.analysis` (definitions in `cblab.analysis.kpis`,
fault phases in `cblab.analysis.scenarios`); this module defines none. It only
decides:

- which rows are analysed (`kpi_views`): per variant, the caller's view of the
  calls (the load generator's rows when a live run has them, as in the figures)
  plus the breaker's state changes; one analysed run per breaker when a variant
  calls several;
- against which scenario: the one the run played, at the durations it was
  played at (`cblab.analysis.played_scenario`);
- how columns are named: `cblab.analysis` names, latencies in ms, matching
  `cblab.plots.tables.KPI_SPECS`, which says how each is shown.

A figure analysis cannot give is missing (NaN), and `frame.attrs["unavailable"]`
(``{row: {kpi: reason}}``) says why, so tables show "n/a" with the reason: a
variant no breaker protects has no `cblab.analysis.BREAKER_KPIS`; a run whose
scenario is unknown or unreadable has no `cblab.analysis.FAULT_KPIS`; events
analysis refuses have no KPIs at all. `frame.attrs["note"]` sums up the
problems (a missing breaker is not one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cblab import analysis
from cblab.plots import traces as tr

__all__ = [
    "NO_BREAKER",
    "NO_SCENARIO",
    "REPORT_KPIS",
    "KpiView",
    "kpi_views",
    "run_kpis",
    "unprotected_variants",
]

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

NO_BREAKER = "no breaker protects this variant"
NO_SCENARIO = "the run records no scenario, so its fault phases are unknown"


def unprotected_variants(run: Any) -> list[str]:
    """The variants of `run` that no breaker protects: every variant when its run.json
    configures no breaker (`config` empty), else those whose name starts with
    "unprotected" (the `cblab.stack.Stack` convention: such a server keeps its
    breakers disabled, for metrics only)."""
    if not run.meta.config:
        return list(run.variants)
    return [v for v in run.variants if v.startswith("unprotected")]


@dataclass(frozen=True)
class KpiView:
    """One row of a report's KPI table: its label, the rows analysed, and whether a
    breaker protects them."""

    label: str
    events: pd.DataFrame
    protected: bool


def kpi_views(run: Any) -> list[KpiView]:
    """What a report analyses for `run`: one view per variant (per "variant · breaker"
    when a variant calls several breakers; calls naming none go with each).

    A view holds the caller's calls (`cblab.plots.traces.CLIENT_VIEW`: the load
    generator's rows in a live run) and the breaker's state changes, as one run
    (`source` "report"). An unprotected variant's view has no breaker states.
    """
    events = tr.as_events(run.events)
    unprotected = set(unprotected_variants(run))
    variant = events["variant"].astype(object).where(events["variant"].notna(), tr.NO_VARIANT)
    views = []
    for v in tr.variants_of(events):
        own = events[(variant == v).to_numpy()]
        calls = tr.call_rows(own, tr.CLIENT_VIEW)[list(own.columns)]
        changes = own[own["kind"] == "state"]
        protected = v not in unprotected
        if not protected:
            changes = changes.iloc[:0]
            calls = calls.assign(state=None, state_after=None)
        frame = pd.concat([calls, changes], ignore_index=True).assign(source="report")
        breakers = sorted({str(b) for b in frame["breaker"].dropna()})
        if len(breakers) <= 1:
            views.append(KpiView(v, frame, protected))
            continue
        no_breaker = frame["breaker"].isna()
        views.extend(
            KpiView(f"{v} · {b}", frame[(frame["breaker"] == b) | no_breaker], protected)
            for b in breakers
        )
    return views


def _analysis_name(column: str) -> str:
    """The `cblab.analysis` KPI behind a report column (latency_p50_ms: latency_p50_s)."""
    return f"{column.removesuffix('_ms')}_s" if column.endswith("_ms") else column


def _value(figures: dict[str, Any], column: str) -> float:
    value = figures.get(_analysis_name(column))
    if value is None:
        return math.nan
    return float(value) * (1000.0 if column.endswith("_ms") else 1.0)


def run_kpis(run: Any) -> pd.DataFrame:
    """KPIs of a `cblab.runs.Run`: one row per `kpi_views` view, `REPORT_KPIS` columns,
    every figure from `cblab.analysis.run_kpis`. Missing figures are NaN, with the
    reason in `attrs["unavailable"]` and the problems summed up in `attrs["note"]`."""
    try:
        scenario = analysis.played_scenario(run)
        no_faults = None if scenario is not None else NO_SCENARIO
    except analysis.AnalysisError as exc:
        scenario, no_faults = None, str(exc)
    options = {} if scenario is not None else {"duration_s": run.meta.duration_s}
    rows: dict[str, dict[str, float]] = {}
    unavailable: dict[str, dict[str, str]] = {}
    problems: list[str] = [no_faults] if no_faults and no_faults != NO_SCENARIO else []
    for view in kpi_views(run):
        reasons: dict[str, str] = {}
        try:
            figures = analysis.run_kpis(view.events, scenario, **options)
        except analysis.AnalysisError as exc:
            figures = {}
            why = f"cblab.analysis cannot analyse {view.label}: {exc}"
            reasons = dict.fromkeys(analysis.KPI_COLUMNS, why)
            problems.append(why)
        else:
            if no_faults:
                reasons.update(dict.fromkeys(analysis.FAULT_KPIS, no_faults))
            if not view.protected:
                reasons.update(dict.fromkeys(analysis.BREAKER_KPIS, NO_BREAKER))
        row, gaps = {}, {}
        for column in REPORT_KPIS:
            gap = reasons.get(_analysis_name(column))
            row[column] = math.nan if gap else _value(figures, column)
            if gap:
                gaps[column] = gap
        rows[view.label] = row
        if gaps:
            unavailable[view.label] = gaps
    frame = pd.DataFrame.from_dict(rows, orient="index", columns=list(REPORT_KPIS))
    frame = frame.astype("float64")
    frame.attrs["unavailable"] = unavailable
    if problems:
        frame.attrs["note"] = "Some figures are n/a: " + "; ".join(dict.fromkeys(problems))
    return frame
