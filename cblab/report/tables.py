"""The report's tables as HTML: KPIs (with differences from a baseline column
coloured), breaker configurations, and where the KPIs come from."""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from cblab.plots.tables import (
    NOT_AVAILABLE,
    KpiSpec,
    compare_kpis,
    format_kpi,
    kpi_spec,
    unavailable_kpis,
)
from cblab.runs import Run

__all__ = ["combined_kpis", "config_table_html", "kpi_source_html", "kpi_table_html"]


def _baseline(labels: Sequence[str]) -> int:
    """The column others are compared with: the one unprotected column, else the first."""
    unprotected = [i for i, label in enumerate(labels) if "unprotected" in label.lower()]
    return unprotected[0] if len(unprotected) == 1 else 0


def _delta(spec: KpiSpec, value: Any, base: Any) -> str:
    try:
        diff = float(value) - float(base)
    except (TypeError, ValueError):
        return ""
    if pd.isna(diff):
        return ""
    sign = "+" if diff > 0 else "−" if diff < 0 else "±"
    size = abs(diff)
    match spec.fmt:
        case "pct":
            return f"{sign}{size * 100:.1f} pp"
        case "ms":
            return f"{sign}{size:,.0f} ms" if size >= 100 else f"{sign}{size:.1f} ms"
        case "s":
            return f"{sign}{size:.1f} s"
        case "int":
            return f"{sign}{round(size):,d}"
        case "rate":
            return f"{sign}{size:.1f} /s"
    return f"{sign}{size:.3g}"


_VERDICT_TITLE = {
    "better": "better than the baseline",
    "worse": "worse than the baseline",
    "same": "about the same as the baseline",
}


def kpi_table_html(kpis: pd.DataFrame, *, table_id: str, caption: str | None = None) -> str:
    """KPIs (one row per compared thing) as an HTML table: KPIs down, things across.

    With two or more columns, each cell says how it differs from the baseline
    column (`_baseline`) and is coloured better (green) or worse (red). A figure
    the frame says is unavailable (`attrs["unavailable"]`) shows "n/a", with the
    reason as its tooltip.
    """
    esc = html.escape
    if kpis.empty:
        return f'<p class="empty" id="{esc(table_id)}">No KPIs: the run has no calls.</p>'
    labels = [str(i) for i in kpis.index]
    compare = len(labels) > 1
    base = _baseline(labels)
    verdicts = compare_kpis(kpis, base) if compare else None
    gaps = unavailable_kpis(kpis)
    head = ['<th scope="col">KPI</th>']
    for pos, label in enumerate(labels):
        tag = ' <span class="tag">baseline</span>' if compare and pos == base else ""
        head.append(f'<th scope="col">{esc(label)}{tag}</th>')
    body = []
    for column in kpis.columns:
        spec = kpi_spec(str(column))
        cells = [f'<th scope="row" title="{esc(str(column))}">{esc(spec.label)}</th>']
        for pos in range(len(labels)):
            value = kpis.iloc[pos][column]
            why = gaps.get((labels[pos], str(column)))
            text = esc(NOT_AVAILABLE if why else format_kpi(str(column), value, spec))
            verdict = verdicts.iloc[pos][column] if verdicts is not None else ""
            classes = (
                ["num"]
                + ([verdict] if verdict else [])
                + (["base"] if compare and pos == base else [])
                + (["na"] if why else [])
            )
            title = f' title="{_VERDICT_TITLE[verdict]}"' if verdict in _VERDICT_TITLE else ""
            if why:
                title = f' title="{esc(f"n/a: {why}")}"'
            delta = ""
            if compare and pos != base:
                d = _delta(spec, value, kpis.iloc[base][column])
                if d:
                    delta = f' <span class="delta">{esc(d)}</span>'
            cells.append(f'<td class="{" ".join(classes)}"{title}>{text}{delta}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return (
        f'<div class="table-wrap"><table class="kpis" id="{esc(table_id)}">{cap}'
        f"<thead><tr>{''.join(head)}</tr></thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _json_compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def config_table_html(config: Mapping[str, Any], table_id: str) -> str:
    esc = html.escape
    if not config:
        return '<p class="muted">No breaker (unprotected run).</p>'
    breakers = list(config)
    dicts = {
        b: (config[b] if isinstance(config[b], Mapping) else {"value": config[b]}) for b in breakers
    }
    keys = list(dict.fromkeys(k for b in breakers for k in dicts[b]))
    head = "".join(f'<th scope="col">{esc(str(b))}</th>' for b in breakers)
    rows = []
    for key in keys:
        cells = "".join(
            f"<td><code>{esc(_json_compact(dicts[b][key]))}</code></td>"
            if key in dicts[b]
            else "<td>—</td>"
            for b in breakers
        )
        rows.append(f'<tr><th scope="row">{esc(str(key))}</th>{cells}</tr>')
    return (
        f'<div class="table-wrap"><table class="config" id="{esc(table_id)}"><thead><tr>'
        f'<th scope="col">setting</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def kpi_source_html(kpis: pd.DataFrame) -> str:
    source = (
        "<p class=\"kpi-source\">Caller's view of the calls (the load generator's rows in a "
        "live run); definitions in <code>cblab.analysis.kpis</code>.</p>"
    )
    reasons = list(dict.fromkeys(unavailable_kpis(kpis).values()))
    if not reasons:
        return source
    warn = " warn" if kpis.attrs.get("note") else ""
    items = "; ".join(html.escape(r) for r in reasons)
    return f'{source}<p class="kpi-source{warn}">{NOT_AVAILABLE}: {items}.</p>'


def combined_kpis(
    runs: Sequence[Run], labels: Sequence[str], kpis: Sequence[pd.DataFrame]
) -> pd.DataFrame:
    """Every run's KPI rows in one frame, labelled "<run>" (or "<run> · <variant>"),
    keeping what each says is unavailable."""
    parts, unavailable = [], {}
    for label, frame in zip(labels, kpis, strict=True):
        if frame.empty:
            continue
        index = [label if len(frame) == 1 else f"{label} · {v}" for v in frame.index]
        reasons = frame.attrs.get("unavailable") or {}
        unavailable.update({new: reasons[old] for old, new in zip(frame.index, index, strict=True)
                            if old in reasons})
        parts.append(frame.set_axis(index, axis=0))
    combined = pd.concat(parts) if parts else pd.DataFrame()
    combined.attrs = {"unavailable": unavailable}
    return combined
