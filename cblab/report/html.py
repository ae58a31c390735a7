"""HTML reports: recorded runs in, one self-contained HTML page out.

The page holds, per run, its metadata, a KPI table and the figures of
`cblab.plots` (state timeline, latency over time and per phase, success rate,
backend load); for several runs, a comparison table with differences coloured
and the runs side by side on shared figures. plotly.js is inlined once (the page
works offline) or loaded from the CDN (a small file that needs the network).

`write_report` also copies every run (events.csv and run.json) into
`<report stem>_data/`, next to the page, and links to it; and, on request,
writes a PNG of every figure through kaleido. Every write is atomic: a failure
never leaves a partial report in place of a good one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pandas as pd
import plotly.graph_objects as go

from cblab import __version__
from cblab.analysis import AnalysisError, played_scenario
from cblab.plots import (
    backend_load,
    latency_distribution,
    latency_scatter,
    state_timeline,
    success_rate,
)
from cblab.plots.tables import (
    NOT_AVAILABLE,
    KpiSpec,
    compare_kpis,
    format_kpi,
    kpi_spec,
    unavailable_kpis,
)
from cblab.plots.traces import combine_events, run_end
from cblab.runs import EVENTS_FILE, META_FILE, Run, replace_dir

from .kpis import run_kpis, unprotected_variants

__all__ = [
    "PngUnavailable",
    "ReportError",
    "ReportFigure",
    "ReportFiles",
    "build_report",
    "data_dir_for",
    "export_pngs",
    "kpi_table_html",
    "report_figures",
    "run_labels",
    "write_report",
]

PlotlyJs = Literal["inline", "cdn"]
DATA_MARKER = "ABOUT.txt"
_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}


class ReportError(ValueError):
    """A report cannot be built from these inputs (the message says why)."""


@dataclass
class ReportFigure:
    """One figure of a report: `id` is its HTML id and its PNG file name."""

    id: str
    title: str
    figure: go.Figure
    caption: str = ""


@dataclass
class ReportFiles:
    """What `write_report` wrote."""

    html: Path
    data_dir: Path | None
    pngs: list[Path] = field(default_factory=list)
    png_note: str | None = None  # why PNGs were not written, when asked for and impossible


# --- figures -------------------------------------------------------------------------


def _slug(text: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return slug[:60] or "run"


def run_labels(runs: Sequence[Run]) -> list[str]:
    """A unique display label per run: its name, numbered when names repeat."""
    labels: list[str] = []
    for run in runs:
        name = run.name
        label, n = name, 2
        while label in labels:
            label, n = f"{name} ({n})", n + 1
        labels.append(label)
    return labels


def _run_dir_name(index: int, run: Run) -> str:
    return f"{index:02d}-{_slug(run.name)}"


def _window_s(duration: float) -> float:
    """A rolling window (s) fit for a run of `duration` seconds: ~1/20 of it, 1-10 s."""
    return float(min(max(round(duration / 20), 1), 10))


def _bin_s(duration: float) -> float:
    return 0.5 if duration <= 40 else 1.0 if duration <= 240 else 5.0


_CAPTIONS = {
    "state_timeline": "Breaker state over time, a band per breaker: closed (green), "
    "half-open (amber), open (red). Shaded columns are the scenario's phases.",
    "latency_scatter": "Every request's latency as the caller saw it, coloured by outcome. "
    "Rejected calls fail fast: they never wait for the backend.",
    "latency_distribution": "Latency per scenario phase as the caller saw it (box: "
    "quartiles and median, dashed line: mean, whiskers to 1.5 IQR, dots: outliers).",
    "success_rate": "Share of calls that returned a result, over a trailing window.",
    "backend_load": "Requests per second that reached the backend (solid) and that "
    "clients offered (dotted): the gap is the load the breaker shed.",
}


def _figures_for(
    events: pd.DataFrame, prefix: str, duration: float, unprotected: Sequence[str] = ()
) -> list[ReportFigure]:
    window, bin_s = _window_s(duration), _bin_s(duration)
    builders: list[tuple[str, str, Callable[[], go.Figure]]] = [
        (
            "state_timeline",
            "Breaker state",
            lambda: state_timeline(events, unprotected=unprotected),
        ),
        ("latency_scatter", "Latency over time", lambda: latency_scatter(events)),
        (
            "latency_distribution",
            "Latency per phase",
            lambda: latency_distribution(events, "phase", log_y=None),
        ),
        (
            "success_rate",
            "Success rate",
            lambda: success_rate(events, window, title=f"Success rate ({window:g} s window)"),
        ),
        ("backend_load", "Backend load", lambda: backend_load(events, bin_s)),
    ]
    out = []
    for name, title, build in builders:
        fig = build()
        fig.update_layout(title=None, margin_t=max(fig.layout.margin.t or 0, 40) - 20)
        out.append(ReportFigure(f"{prefix}-{name}", title, fig, _CAPTIONS[name]))
    return out


def _run_duration(run: Run) -> float:
    return float(run.meta.duration_s or run_end(run.events) or 1.0)


def report_figures(runs: Sequence[Run]) -> dict[str, list[ReportFigure]]:
    """Every figure of the report, by section id ("comparison", "run-1", "run-2"...)."""
    sections: dict[str, list[ReportFigure]] = {}
    if len(runs) > 1:
        labels = run_labels(runs)
        combined = combine_events(
            {label: run.events for label, run in zip(labels, runs, strict=True)}
        )
        unprotected = [
            label if len(run.variants) <= 1 else f"{label} · {v}"
            for label, run in zip(labels, runs, strict=True)
            for v in unprotected_variants(run)
        ]
        duration = max(_run_duration(r) for r in runs)
        sections["comparison"] = [
            f
            for f in _figures_for(combined, "comparison", duration, unprotected)
            if not f.id.endswith("latency_scatter")  # one scatter per run is enough
        ]
    for i, run in enumerate(runs, start=1):
        sections[f"run-{i}"] = _figures_for(
            run.events, f"run-{i}", _run_duration(run), unprotected_variants(run)
        )
    return sections


# --- tables --------------------------------------------------------------------------


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


def _config_html(config: Mapping[str, Any], table_id: str) -> str:
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


def _scenario_html(run: Run) -> str:
    esc = html.escape
    scenario = run.meta.scenario
    if not scenario:
        return "—"
    parts = [f"<strong>{esc(str(scenario.get('name')))}</strong>"]
    try:
        played = played_scenario(run)
    except AnalysisError as exc:
        return parts[0] + f'<br><span class="muted">{esc(str(exc))}</span>'
    if played is None:
        return parts[0]
    if played.description:
        parts.append(f'<span class="muted">{esc(played.description)}</span>')
    items = [
        f'<span class="phase">{esc(phase.name)}{esc(f" {phase.duration_s:g} s")}</span>'
        for phase in played.phases
    ]
    scale = run.meta.extra.get("time_scale", 1.0)
    note = f" (played at time scale {scale:g})" if scale != 1 else ""
    parts.append(f'<span class="phases">{" → ".join(items)}{esc(note)}</span>')
    return "<br>".join(parts)


def _meta_html(run: Run, index: int, data_href: str | None) -> str:
    esc = html.escape
    meta = run.meta
    events = run.events
    calls = int((events["kind"] == "call").sum())
    changes = int((events["kind"] == "state").sum())
    duration = f"{meta.duration_s:.1f} s" if meta.duration_s is not None else "—"
    versions = " · ".join(f"{esc(k)} {esc(v)}" for k, v in meta.versions.items()) or "—"
    rows = [
        ("Kind", f'<span class="badge {esc(meta.kind)}">{esc(meta.kind)}</span>'),
        ("Scenario", _scenario_html(run)),
        ("Variants", esc(", ".join(run.variants)) or "—"),
        ("Seed", esc(str(meta.seed)) if meta.seed is not None else "—"),
        ("Started", esc(meta.started_at) or "—"),
        ("Duration", esc(duration)),
        ("Events", f"{calls:,} calls, {changes:,} state changes"),
        ("Versions", f'<span class="small">{versions}</span>'),
    ]
    if data_href:
        events_href = esc(f"{data_href}/{EVENTS_FILE}")
        meta_href = esc(f"{data_href}/{META_FILE}")
        rows.append(
            (
                "Data",
                f'<a class="data-link" href="{events_href}" download>{EVENTS_FILE}</a> · '
                f'<a class="data-link" href="{meta_href}">{META_FILE}</a>',
            )
        )
    items = "".join(f"<dt>{label}</dt><dd>{value}</dd>" for label, value in rows)
    notes = f'<p class="notes">{esc(meta.notes)}</p>' if meta.notes.strip() else ""
    config = _config_html(meta.config, f"run-{index}-config")
    return (
        f'<dl class="meta" id="run-{index}-meta">{items}</dl>{notes}'
        f'<details class="config"><summary>Breaker configuration</summary>{config}</details>'
    )


# --- page ----------------------------------------------------------------------------


def _figure_html(fig: ReportFigure) -> str:
    div = fig.figure.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"{fig.id}-plot", config=_PLOT_CONFIG
    )
    caption = f"<figcaption>{html.escape(fig.caption)}</figcaption>" if fig.caption else ""
    return (
        f'<figure class="chart" id="{html.escape(fig.id)}"><h3>{html.escape(fig.title)}</h3>'
        f"{div}{caption}</figure>"
    )


def _plotlyjs_html(mode: PlotlyJs) -> str:
    if mode == "cdn":
        from plotly.io._utils import plotly_cdn_url

        return f'<script src="{html.escape(plotly_cdn_url())}" charset="utf-8"></script>'
    from plotly.offline import get_plotlyjs

    return (
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
    )


def _kpi_source(kpis: pd.DataFrame) -> str:
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


def _combined_kpis(
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


def build_report(
    runs: Sequence[Run],
    *,
    plotlyjs: PlotlyJs = "inline",
    title: str | None = None,
    data_dirs: Sequence[str] | None = None,
) -> str:
    """The report page for `runs` as an HTML string (nothing is written).

    `plotlyjs="inline"` embeds plotly.js once (about 4.8 MB; works offline);
    `"cdn"` loads it from cdn.plot.ly. `data_dirs`, one relative URL per run,
    adds links to each run's events.csv and run.json (`write_report` sets it).
    """
    if plotlyjs not in ("inline", "cdn"):
        raise ReportError(f"plotlyjs must be 'inline' or 'cdn', got {plotlyjs!r}")
    runs = list(runs)
    if not runs:
        raise ReportError("a report needs at least one run")
    if data_dirs is not None and len(data_dirs) != len(runs):
        raise ReportError("data_dirs needs one entry per run")
    esc = html.escape
    labels = run_labels(runs)
    if title is None:
        title = (
            f"cblab report: {labels[0]}" if len(runs) == 1 else f"cblab report: {len(runs)} runs"
        )
    kpis = [run_kpis(run) for run in runs]
    sections = report_figures(runs)
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    toc = []
    body = []
    if "comparison" in sections:
        toc.append('<li><a href="#comparison">Comparison</a></li>')
        table = kpi_table_html(
            _combined_kpis(runs, labels, kpis),
            table_id="comparison-kpis",
        )
        figures = "".join(_figure_html(f) for f in sections["comparison"])
        body.append(
            '<section id="comparison" class="card">'
            "<h2>Comparison</h2>"
            '<p class="lead">Each column is compared with the baseline column '
            "(the unprotected one when there is exactly one, else the first): "
            '<span class="key better">better</span> <span class="key worse">worse</span> '
            '<span class="key same">about the same</span>.</p>'
            f"{table}{figures}</section>"
        )
    for i, (run, label, frame) in enumerate(zip(runs, labels, kpis, strict=True), start=1):
        sid = f"run-{i}"
        toc.append(f'<li><a href="#{sid}">{esc(label)}</a></li>')
        href = data_dirs[i - 1] if data_dirs is not None else None
        figures = "".join(_figure_html(f) for f in sections[sid])
        note = ""
        if len(frame) > 1:
            note = (
                '<p class="lead">Variants compared with the baseline column: '
                '<span class="key better">better</span> <span class="key worse">worse</span> '
                '<span class="key same">about the same</span>.</p>'
            )
        body.append(
            f'<section id="{sid}" class="card run">'
            f'<h2>{esc(label)} <span class="badge {esc(run.meta.kind)}">{esc(run.meta.kind)}</span></h2>'
            f"{_meta_html(run, i, href)}"
            f"<h3>Key figures</h3>{note}{kpi_table_html(frame, table_id=f'{sid}-kpis')}"
            f"{_kpi_source(frame)}"
            f"{figures}</section>"
        )
    nav = f'<nav id="toc"><ul>{"".join(toc)}</ul></nav>' if len(toc) > 1 else ""
    return _PAGE.format(
        title=esc(title),
        css=_CSS,
        plotlyjs=_plotlyjs_html(plotlyjs),
        subtitle=esc(
            f"{len(runs)} run{'s' if len(runs) != 1 else ''} · generated {generated} "
            f"by cblab {__version__}"
        ),
        nav=nav,
        body="\n".join(body),
    )


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="cblab">
<title>{title}</title>
<style>{css}</style>
{plotlyjs}
</head>
<body>
<header id="top"><div class="wrap"><h1>{title}</h1><p class="subtitle">{subtitle}</p>{nav}</div></header>
<main class="wrap">
{body}
</main>
<footer class="wrap"><p>Made with cblab, the circuit-breaker lab. Figures are interactive:
hover for values, drag to zoom, double-click to reset.</p></footer>
</body>
</html>
"""

_CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #e4e7eb; --bg: #f5f7fa; --card: #fff;
  --accent: #1f6fb2; --better: #dff3e6; --better-ink: #1e6b3a; --worse: #fbe1e1;
  --worse-ink: #9b2c2c; --same: #f3f5f8; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
.wrap { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { background: #1f2933; color: #f5f7fa; padding: 22px 0 14px; margin-bottom: 24px; }
header h1 { margin: 0 0 4px; font-size: 24px; font-weight: 650; letter-spacing: -0.01em; }
header .subtitle { margin: 0; color: #cbd2d9; font-size: 13px; }
nav ul { list-style: none; display: flex; flex-wrap: wrap; gap: 6px 8px; padding: 0; margin: 14px 0 0; }
nav a { display: inline-block; color: #f5f7fa; text-decoration: none; font-size: 13px;
  padding: 3px 10px; border: 1px solid #52606d; border-radius: 999px; }
nav a:hover { background: #323f4b; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px;
  padding: 20px 24px 8px; margin: 0 0 24px; box-shadow: 0 1px 2px rgba(31, 41, 51, 0.04); }
h2 { margin: 0 0 14px; font-size: 20px; font-weight: 650; display: flex; align-items: center; gap: 10px; }
h3 { margin: 22px 0 6px; font-size: 15px; font-weight: 620; }
.lead { color: var(--muted); font-size: 13px; margin: 0 0 10px; }
.muted { color: var(--muted); }
.small { font-size: 12px; color: var(--muted); }
.badge { font-size: 11px; font-weight: 600; text-transform: uppercase; letter-spacing: 0.05em;
  padding: 2px 8px; border-radius: 999px; background: #e4e7eb; color: #3e4c59; }
.badge.live { background: #e0ecf8; color: #1f4e79; }
.badge.simulated { background: #efe7f8; color: #553c7b; }
.tag { font-size: 10px; font-weight: 600; text-transform: uppercase; letter-spacing: 0.04em;
  color: var(--muted); border: 1px solid var(--line); border-radius: 4px; padding: 0 4px; margin-left: 4px; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 6px 18px; margin: 0 0 10px; font-size: 14px; }
dl.meta dt { color: var(--muted); }
dl.meta dd { margin: 0; }
.phases .phase { background: #f0f4f8; border-radius: 4px; padding: 0 6px; font-size: 13px; }
.notes { white-space: pre-wrap; background: #fffbea; border-left: 3px solid #f0b429;
  padding: 8px 12px; margin: 8px 0; font-size: 14px; }
details.config { margin: 6px 0 4px; font-size: 14px; }
details.config summary { cursor: pointer; color: var(--accent); }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 10px; }
th, td { padding: 6px 12px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { background: #f0f4f8; font-weight: 600; border-bottom: 2px solid #d9e2ec; white-space: nowrap; }
tbody th { font-weight: 500; color: #3e4c59; white-space: nowrap; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.base { background: var(--same); }
td.better { background: var(--better); color: var(--better-ink); }
td.worse { background: var(--worse); color: var(--worse-ink); }
td.same { color: var(--muted); }
td.na { color: var(--muted); cursor: help; }
.delta { font-size: 11px; opacity: 0.85; margin-left: 6px; }
table.config code { font-size: 12px; }
.key { font-size: 12px; padding: 1px 8px; border-radius: 4px; }
.key.better { background: var(--better); color: var(--better-ink); }
.key.worse { background: var(--worse); color: var(--worse-ink); }
.key.same { background: var(--same); }
figure.chart { margin: 18px 0 18px; padding-top: 10px; border-top: 1px solid var(--line); }
figure.chart h3 { margin-top: 0; }
figcaption { color: var(--muted); font-size: 12.5px; margin-top: 2px; }
.empty { color: var(--muted); font-style: italic; }
.kpi-source { color: var(--muted); font-size: 12px; margin: -4px 0 8px; }
.kpi-source.warn { color: #8d5b00; }
a { color: var(--accent); }
footer { color: var(--muted); font-size: 12px; padding-bottom: 30px; }
"""


# --- files ---------------------------------------------------------------------------


def _write_run_copy(run: Run, target: Path) -> None:
    target.mkdir()
    src = run.path
    if src is not None and (src / EVENTS_FILE).is_file() and (src / META_FILE).is_file():
        shutil.copyfile(src / EVENTS_FILE, target / EVENTS_FILE)
        shutil.copyfile(src / META_FILE, target / META_FILE)
        return
    run.events.to_csv(target / EVENTS_FILE, index=False, lineterminator="\n")
    (target / META_FILE).write_text(
        json.dumps(run.meta.to_dict(), indent=2, default=str) + "\n", encoding="utf-8"
    )


def _write_temp(path: Path, text: str) -> Path:
    """`text` in a complete, synced temporary file next to `path` (renamed in later)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def data_dir_for(out_path: Path) -> Path:
    """Where `write_report` puts the runs' data: `<stem>_data/` next to the report."""
    return out_path.with_name(f"{out_path.stem}_data")


def write_report(
    runs: Sequence[Run],
    out_path: str | os.PathLike[str],
    *,
    plotlyjs: PlotlyJs = "inline",
    title: str | None = None,
    data: bool = True,
    png_dir: str | os.PathLike[str] | None = None,
) -> ReportFiles:
    """Build the report and write it to `out_path`, atomically.

    With `data=True` each run's events.csv and run.json are copied into
    `<stem>_data/NN-<name>/` and linked from the page. With `png_dir`, every
    figure is also saved as a PNG there (kaleido + Chromium); if that is not
    possible the HTML is still written and `ReportFiles.png_note` says why.
    """
    out = Path(out_path)
    if out.exists() and out.is_dir():
        raise ReportError(f"{out} is a directory; give the report's file name")
    runs = list(runs)
    data_dir = data_dir_for(out) if data else None
    dir_names = [_run_dir_name(i, run) for i, run in enumerate(runs, start=1)]
    hrefs = [f"{quote(data_dir.name)}/{quote(name)}" for name in dir_names] if data_dir else None
    text = build_report(runs, plotlyjs=plotlyjs, title=title, data_dirs=hrefs)
    if data_dir is not None and data_dir.exists() and not (data_dir / DATA_MARKER).is_file():
        raise ReportError(
            f"{data_dir} exists and was not written by cblab report; not replacing it"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    # Order: the page complete in a temp file, then the data swapped in, then the page
    # renamed over the old one. A failure before the last step changes nothing.
    page = _write_temp(out, text)
    try:
        if data_dir is not None:
            tmp = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}.", suffix=".tmp", dir=out.parent))
            try:
                (tmp / DATA_MARKER).write_text(
                    f"The recorded runs behind {out.name}, written by cblab report.\n"
                    "Each directory is a run: `cblab report DIR...` rebuilds a report from them.\n",
                    encoding="utf-8",
                )
                for run, name in zip(runs, dir_names, strict=True):
                    _write_run_copy(run, tmp / name)
                os.chmod(tmp, 0o755)
                replace_dir(tmp, data_dir)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        os.replace(page, out)
    except BaseException:
        page.unlink(missing_ok=True)
        raise
    files = ReportFiles(html=out, data_dir=data_dir)
    if png_dir is not None:
        try:
            files.pngs = export_pngs(runs, png_dir)
        except PngUnavailable as exc:
            files.png_note = str(exc)
    return files


# --- static images -------------------------------------------------------------------


class PngUnavailable(RuntimeError):
    """PNG export is not possible here (no kaleido, or no Chromium for it)."""


def export_pngs(
    runs: Sequence[Run],
    out_dir: str | os.PathLike[str],
    *,
    width: int = 1100,
    scale: float = 1.0,
    only: Sequence[str] | None = None,
) -> list[Path]:
    """Write every report figure as `<out_dir>/<figure id>.png`; return the paths.

    `only`: figure ids to write (e.g. ``["run-1-state_timeline"]``), default all.

    Uses kaleido, which drives a Chromium: the system one on PATH (Debian's
    `chromium`) or `$BROWSER_PATH`. Raises `PngUnavailable` (and writes nothing)
    when that does not work.
    """
    try:
        import kaleido  # noqa: F401
        import plotly.io as pio
    except ImportError as exc:
        raise PngUnavailable(f"PNG export needs kaleido ({exc}); pip install kaleido") from None
    figures = [f for section in report_figures(runs).values() for f in section]
    if only is not None:
        unknown = sorted(set(only) - {f.id for f in figures})
        if unknown:
            raise ReportError(f"no such figure(s): {', '.join(unknown)}")
        figures = [f for f in figures if f.id in set(only)]
    target = Path(out_dir)
    created = not target.exists()
    target.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".png.", dir=target))
    try:
        paths = [tmp / f"{f.id}.png" for f in figures]
        try:
            pio.write_images(
                [f.figure for f in figures],
                [str(p) for p in paths],
                format="png",
                width=width,
                scale=scale,
            )
        except Exception as exc:  # kaleido/choreographer raise many kinds
            browser = os.environ.get("BROWSER_PATH")
            hint = (
                f" (BROWSER_PATH={browser!r})"
                if browser
                else "; install chromium or set BROWSER_PATH=/usr/bin/chromium"
            )
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shutil.rmtree(tmp, ignore_errors=True)
            if created:
                with contextlib.suppress(OSError):
                    target.rmdir()
            raise PngUnavailable(f"PNG export unavailable: {first}{hint}") from None
        final = []
        for path in paths:
            dest = target / path.name
            os.replace(path, dest)
            final.append(dest)
        return final
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
