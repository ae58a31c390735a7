"""Two runs side by side: protected vs unprotected, config A vs B, simulated vs live."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cblab.schema import CompactRun

from .frames import AnalysisError, _shown, events_frame
from .kpis import KPI_COLUMNS, kpis, missing_reasons, phase_kpis, run_kpis

__all__ = ["compare", "compare_variants"]


def _label(events: Any, frame: pd.DataFrame | None, fallback: str) -> str:
    if frame is not None:
        for column in ("variant", "source"):
            values = frame[column].dropna().unique()
            if len(values) == 1:
                return str(values[0])
    variant = getattr(events, "variant", None)
    return str(variant) if variant else fallback


def _figures(events: Any, scenario: Any, per_phase: bool,
             options: Mapping[str, Any]) -> tuple[pd.Series, pd.DataFrame | None]:
    """KPIs of one run as a Series (index: KPI, or (phase, KPI) per phase)."""
    if isinstance(events, pd.Series):
        return events.astype("float64"), None
    if isinstance(events, Mapping):
        return pd.Series(dict(events), dtype="float64"), None
    if isinstance(events, CompactRun) and scenario is None:
        frame = None  # its own scenario: the fast path, no frame needed
        source = events
    else:
        frame = events_frame(events)
        source = frame
        if scenario is None:
            scenario = getattr(events, "scenario", None)
    if not per_phase:
        return pd.Series(run_kpis(source, scenario, **options), dtype="float64"), frame
    table = phase_kpis(source, scenario, **options).set_index("phase")[list(KPI_COLUMNS)]
    return table.stack().astype("float64"), frame


def compare(
    a: Any,
    b: Any,
    scenario: Any = None,
    *,
    labels: Sequence[str] | None = None,
    per_phase: bool = False,
    **options: Any,
) -> pd.DataFrame:
    """KPIs of runs `a` and `b` side by side, with `difference` (b - a) and `ratio` (b / a).

    `a` and `b` are each one run (rows, a DataFrame, a CSV path, a `SimRun`) or
    already computed KPIs (a dict or Series from `run_kpis`). Labels default to
    each run's variant (or source), else "a" and "b". With `per_phase`, the
    index is (phase, KPI). `options` go to `run_kpis` (`service`, `fault_phases`,
    `flap_window_s`, `duration_s`).

    The ratio is NaN when `a` is 0 or missing.
    """
    fa, frame_a = _figures(a, scenario, per_phase, options)
    fb, frame_b = _figures(b, scenario, per_phase, options)
    if labels is None:
        label_a, label_b = _label(a, frame_a, "a"), _label(b, frame_b, "b")
        if label_a == label_b:
            label_a, label_b = f"{label_a} (a)", f"{label_b} (b)"
    else:
        if len(labels) != 2 or not all(isinstance(x, str) and x for x in labels) or (
            labels[0] == labels[1]
        ):
            raise AnalysisError(f"labels must be two different non-empty strings, got {_shown(labels)}")
        label_a, label_b = labels
    index = fa.index.union(fb.index, sort=False) if per_phase else pd.Index(
        [k for k in KPI_COLUMNS if k in fa.index or k in fb.index]
        + [k for k in fa.index.union(fb.index, sort=False) if k not in KPI_COLUMNS]
    )
    va = fa.reindex(index).astype("float64")
    vb = fb.reindex(index).astype("float64")
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = vb / va.where(va != 0)
    table = pd.DataFrame({label_a: va, label_b: vb, "difference": vb - va, "ratio": ratio})
    table.index.name = "kpi" if not per_phase else None
    if per_phase:
        table.index.names = ["phase", "kpi"]
    else:
        _say_why_missing(table, {label_a: fa, label_b: fb})
    return table


def _say_why_missing(table: pd.DataFrame, runs: Mapping[str, pd.Series]) -> None:
    """`table.attrs["unavailable"]`: {run label: {kpi: reason}} for the missing
    detection and recovery figures (tables show "n/a: <reason>")."""
    found = {label: why for label, figures in runs.items()
             if (why := missing_reasons(figures.to_dict()))}
    if found:
        table.attrs["unavailable"] = found


def compare_variants(
    events: Any,
    scenario: Any = None,
    *,
    baseline: str = "unprotected",
    **options: Any,
) -> pd.DataFrame:
    """Every variant of a frame against `baseline`: one column per variant, plus
    `<variant> / <baseline>` ratio columns. Index: the KPIs."""
    frame = events_frame(events)
    if scenario is None:
        scenario = getattr(events, "scenario", None)
    table = kpis(frame, scenario, by=("variant",), **options).set_index("variant")
    if baseline not in table.index:
        known = ", ".join(map(str, table.index)) or "none"
        raise AnalysisError(f"no variant {_shown(baseline)} in these events; variants: {known}")
    figures = table[list(KPI_COLUMNS)].astype("float64").T
    base = figures[baseline]
    out = {baseline: base}
    for variant in figures.columns:
        if variant == baseline:
            continue
        out[variant] = figures[variant]
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"{variant} / {baseline}"] = figures[variant] / base.where(base != 0)
    result = pd.DataFrame(out)
    result.index.name = "kpi"
    _say_why_missing(result, {str(v): figures[v] for v in figures.columns})
    return result

