"""KPI tables and comparisons: a KPI frame in, a plotly Table (or verdicts) out.

A KPI frame has one row per compared thing (a variant, a run, "run · variant")
and one column per KPI, as `cblab.analysis` produces. How a KPI is shown
(label, number format) and which direction is better come from `KPI_SPECS`,
with a guess from the name for KPIs not listed there.

A missing figure shows as "—", or as "n/a" when the frame says why it is
missing (`attrs["unavailable"]`, as `cblab.report.run_kpis` sets it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import pandas as pd
import plotly.graph_objects as go

from .style import empty_figure, label, layout_dict, merge

__all__ = [
    "BETTER_FILL",
    "KPI_SPECS",
    "NOT_AVAILABLE",
    "KpiSpec",
    "WORSE_FILL",
    "compare_kpis",
    "comparison_table",
    "format_kpi",
    "kpi_spec",
    "kpi_table",
    "unavailable_kpis",
]

Verdict = Literal["better", "worse", "same", ""]
BETTER_FILL = "#dff3e6"
WORSE_FILL = "#fbe1e1"
_PLAIN_FILL = "#ffffff"
_BASELINE_FILL = "#f3f5f8"


@dataclass(frozen=True)
class KpiSpec:
    """How to show one KPI and which way is better.

    `fmt`: "pct" (a fraction shown as %), "ms", "s", "int", "rate" (per second) or
    "float". `better`: "higher", "lower" or None (no verdict). Differences within
    `tolerance` (absolute, in the KPI's own units) count as the same.
    """

    label: str
    fmt: str = "float"
    better: Literal["higher", "lower"] | None = None
    tolerance: float = 0.0


KPI_SPECS: dict[str, KpiSpec] = {
    # cblab.analysis KPIs (definitions in cblab.analysis.kpis); the report's tables
    # show latencies in ms (cblab.report.kpis)
    "requested": KpiSpec("calls made", "int"),
    "successful": KpiSpec("calls answered", "int"),
    "availability": KpiSpec("availability (answered)", "pct", "higher", 0.005),
    "share_failed_fast": KpiSpec("failed fast (rejected)", "pct"),
    "rejected": KpiSpec("rejected calls", "int"),
    "failed": KpiSpec("failed calls (error, timeout)", "int", "lower"),
    "admitted": KpiSpec("calls sent to the backend", "int"),
    "wasted": KpiSpec("calls wasted on a failing backend", "int", "lower"),
    "wasted_share": KpiSpec("share of calls wasted", "pct", "lower", 0.005),
    "latency_p50_ms": KpiSpec("latency p50", "ms", "lower", 0.5),
    "latency_p95_ms": KpiSpec("latency p95", "ms", "lower", 0.5),
    "latency_p99_ms": KpiSpec("latency p99", "ms", "lower", 0.5),
    "latency_p50_s": KpiSpec("latency p50", "s", "lower", 0.0005),
    "latency_p95_s": KpiSpec("latency p95", "s", "lower", 0.0005),
    "latency_p99_s": KpiSpec("latency p99", "s", "lower", 0.0005),
    "throughput_per_s": KpiSpec("calls per second", "rate"),
    "goodput_per_s": KpiSpec("answered calls per second", "rate", "higher", 0.05),
    "trips": KpiSpec("trips (closed → open)", "int"),
    "probe_failures": KpiSpec("failed probes (half-open → open)", "int"),
    "flaps": KpiSpec("flaps (re-trips soon after closing)", "int", "lower"),
    "time_closed_s": KpiSpec("time closed", "s"),
    "time_open_s": KpiSpec("time open", "s"),
    "time_half_open_s": KpiSpec("time half-open", "s"),
    "detection_s": KpiSpec("detection (fault start → open)", "s", "lower", 0.05),
    "recovery_s": KpiSpec("recovery (fault end → closed)", "s", "lower", 0.05),
    "fault_episodes": KpiSpec("fault episodes", "int"),
    "detected": KpiSpec("fault episodes detected (opened)", "int"),
    "recovered": KpiSpec("fault episodes recovered (closed)", "int"),
    "duration_s": KpiSpec("duration", "s"),
}


def kpi_spec(name: str) -> KpiSpec:
    """The spec of a KPI: from `KPI_SPECS`, else guessed from its name."""
    spec = KPI_SPECS.get(name)
    if spec is not None:
        return spec
    text = name.replace("_", " ")
    lowered = name.lower()
    if lowered.endswith("_ms") or "latency" in lowered:
        return KpiSpec(text, "ms", "lower", 0.5)
    if "success" in lowered or "availability" in lowered:
        return KpiSpec(text, "pct" if "rate" in lowered or "frac" in lowered else "float", "higher")
    if lowered.endswith(("_rate", "_frac", "_share")):
        return KpiSpec(text, "pct")
    if lowered.endswith("_s"):
        return KpiSpec(text, "s")
    if lowered.endswith(("_count", "s")) and not lowered.endswith("_s"):
        return KpiSpec(text, "int")
    return KpiSpec(text)


#: How a figure is shown that could not be computed (the frame says why).
NOT_AVAILABLE = "n/a"


def unavailable_kpis(kpis: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(row label, KPI) -> why that figure is missing, from `kpis.attrs["unavailable"]`
    (``{row label: {KPI: reason}}``); empty when the frame says nothing."""
    found = kpis.attrs.get("unavailable") if kpis is not None else None
    if not isinstance(found, Mapping):
        return {}
    return {
        (str(row), str(kpi)): str(why)
        for row, reasons in found.items()
        if isinstance(reasons, Mapping)
        for kpi, why in reasons.items()
    }


def _missing(value: Any) -> bool:
    if value is None:
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def format_kpi(name: str, value: Any, spec: KpiSpec | None = None) -> str:
    """A KPI value as text ("—" when missing)."""
    if _missing(value):
        return "—"
    spec = spec or kpi_spec(name)
    if isinstance(value, str) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            return str(value)
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    match spec.fmt:
        case "pct":
            return f"{value * 100:.1f} %"
        case "ms":
            return f"{value:,.0f} ms" if abs(value) >= 100 else f"{value:.1f} ms"
        case "s":
            return f"{value:.2f} s" if abs(value) < 10 else f"{value:.1f} s"
        case "int":
            return f"{round(value):,d}"
        case "rate":
            return f"{value:.1f} /s"
    return f"{value:.3g}"


def compare_kpis(
    kpis: pd.DataFrame,
    baseline: int | str = 0,
    *,
    specs: Mapping[str, KpiSpec] | None = None,
) -> pd.DataFrame:
    """Verdicts against a baseline row: "better", "worse", "same" or "" (no verdict).

    Same shape as `kpis`. The baseline row (a position or an index label) is all "";
    so is every KPI without a better direction, and every missing value.
    """
    if kpis.empty:
        return pd.DataFrame(index=kpis.index, columns=kpis.columns, dtype=object)
    base_pos = baseline if isinstance(baseline, int) else kpis.index.get_loc(baseline)
    verdicts = pd.DataFrame("", index=kpis.index, columns=kpis.columns, dtype=object)
    base = kpis.iloc[base_pos]
    for column in kpis.columns:
        spec = (specs or {}).get(column) or kpi_spec(str(column))
        if spec.better is None or _missing(base[column]):
            continue
        for pos in range(len(kpis)):
            value = kpis.iloc[pos][column]
            if pos == base_pos or _missing(value):
                continue
            try:
                diff = float(value) - float(base[column])
            except (TypeError, ValueError):
                continue
            if abs(diff) <= spec.tolerance:
                verdict = "same"
            elif (diff > 0) == (spec.better == "higher"):
                verdict = "better"
            else:
                verdict = "worse"
            verdicts.iloc[pos, verdicts.columns.get_loc(column)] = verdict
    return verdicts


_FILLS = {"better": BETTER_FILL, "worse": WORSE_FILL}


def kpi_table(
    kpis: pd.DataFrame,
    *,
    baseline: int | str | None = None,
    title: str | None = "Key figures",
    specs: Mapping[str, KpiSpec] | None = None,
) -> go.Figure:
    """A plotly Table: one row per KPI, one column per row of `kpis`.

    With a `baseline` (position or label of a row of `kpis`) the other columns'
    cells are coloured green (better) or red (worse) against it.
    """
    if kpis is None or kpis.empty:
        return empty_figure("No KPIs yet", title=title, height=160)
    specs = dict(specs or {})
    names = [str(c) for c in kpis.columns]
    spec_of = {c: specs.get(c) or kpi_spec(c) for c in names}
    verdicts = compare_kpis(kpis, baseline, specs=specs) if baseline is not None else None
    base_pos = None
    if baseline is not None:
        base_pos = baseline if isinstance(baseline, int) else kpis.index.get_loc(baseline)
    header = ["KPI"] + [
        label(i) + (" (baseline)" if pos == base_pos else "") for pos, i in enumerate(kpis.index)
    ]
    gaps = unavailable_kpis(kpis)
    columns: list[list[str]] = [[label(spec_of[c].label) for c in names]]
    fills: list[list[str]] = [[_BASELINE_FILL] * len(names)]
    for pos in range(len(kpis)):
        row = kpis.iloc[pos]
        name = str(kpis.index[pos])
        columns.append([
            NOT_AVAILABLE if (name, c) in gaps else format_kpi(c, row[c], spec_of[c]) for c in names
        ])
        if verdicts is None:
            fills.append([_PLAIN_FILL] * len(names))
        else:
            fills.append([_FILLS.get(verdicts.iloc[pos][c], _PLAIN_FILL) for c in names])
    table = go.Table(
        header={
            "values": header,
            "fill_color": "#e4e8ee",
            "align": ["left"] + ["right"] * len(kpis),
            "font": {"size": 12},
        },
        cells={
            "values": columns,
            "fill_color": fills,
            "align": ["left"] + ["right"] * len(kpis),
            "height": 26,
        },
        columnwidth=[2.2] + [1.0] * len(kpis),
    )
    layout = merge(
        layout_dict(title=title, height=90 + 27 * (len(names) + 1), xaxis_title=None),
        {"margin": {"l": 8, "r": 8, "b": 8}},
    )
    return go.Figure(data=[table], layout=layout)


def comparison_table(
    kpis: pd.DataFrame,
    *,
    baseline: int | str = 0,
    title: str | None = "Comparison",
    specs: Mapping[str, KpiSpec] | None = None,
) -> go.Figure:
    """`kpi_table` with differences against `baseline` (default: the first row) coloured."""
    return kpi_table(kpis, baseline=baseline, title=title, specs=specs)
