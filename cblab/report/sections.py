"""One renderer per part of the report page: the comparison section, a run's
section (metadata, key figures, charts), a figure, the plotly.js loader and the
table of contents. Each returns an HTML fragment; the markup lives in the
templates of `cblab/report/assets/`, the data-driven tables in `tables`."""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Literal

import pandas as pd

from cblab.analysis import GLOSSARY, AnalysisError, played_scenario
from cblab.runs import EVENTS_FILE, META_FILE, Run

from .figures import ReportFigure
from .tables import config_table_html, kpi_source_html, kpi_table_html
from .templates import render

__all__ = [
    "comparison_section",
    "figure_html",
    "glossary_html",
    "meta_html",
    "nav_html",
    "plotlyjs_html",
    "run_section",
    "scenario_html",
]

PlotlyJs = Literal["inline", "cdn"]
_PLOT_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"scale": 2}}


def figure_html(fig: ReportFigure) -> str:
    div = fig.figure.to_html(
        full_html=False, include_plotlyjs=False, div_id=f"{fig.id}-plot", config=_PLOT_CONFIG
    )
    caption = f"<figcaption>{html.escape(fig.caption)}</figcaption>" if fig.caption else ""
    return render(
        "figure.html", id=html.escape(fig.id), title=html.escape(fig.title), plot=div,
        caption=caption,
    )


def _figures_html(figures: Sequence[ReportFigure]) -> str:
    return "".join(figure_html(f) for f in figures)


def plotlyjs_html(mode: PlotlyJs) -> str:
    if mode == "cdn":
        from plotly.io._utils import plotly_cdn_url

        return f'<script src="{html.escape(plotly_cdn_url())}" charset="utf-8"></script>'
    from plotly.offline import get_plotlyjs

    return (
        "<script>window.PlotlyConfig = {MathJaxConfig: 'local'};</script>\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>'
    )


def nav_html(entries: Sequence[tuple[str, str]]) -> str:
    """The table of contents, (section id, label) each; none for a single section."""
    if len(entries) <= 1:
        return ""
    items = "".join(
        f'<li><a href="#{sid}">{html.escape(label)}</a></li>' for sid, label in entries
    )
    return f'<nav id="toc"><ul>{items}</ul></nav>'


def scenario_html(run: Run) -> str:
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


def meta_html(run: Run, index: int, data_href: str | None) -> str:
    """A run's metadata list, notes and breaker configuration."""
    esc = html.escape
    meta = run.meta
    events = run.events
    calls = int((events["kind"] == "call").sum())
    changes = int((events["kind"] == "state").sum())
    duration = f"{meta.duration_s:.1f} s" if meta.duration_s is not None else "—"
    versions = " · ".join(f"{esc(k)} {esc(v)}" for k, v in meta.versions.items()) or "—"
    rows = [
        ("Kind", f'<span class="badge {esc(meta.kind)}">{esc(meta.kind)}</span>'),
        ("Scenario", scenario_html(run)),
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
    config = config_table_html(meta.config, f"run-{index}-config")
    return render("meta.html", id=f"run-{index}-meta", items=items, notes=notes, config=config)


def comparison_section(kpis: pd.DataFrame, figures: Sequence[ReportFigure], *,
                       section_id: str = "comparison", scenario: str | None = None,
                       elsewhere: Sequence[str | None] = ()) -> str:
    """Runs of one scenario side by side: one KPI table (`tables.combined_kpis`),
    shared figures. `elsewhere` names the scenarios of the report's other runs, which
    this comparison leaves out (and says so)."""
    heading = "Comparison" + (f": {scenario}" if scenario and elsewhere else "")
    note = ""
    if elsewhere:
        others = ", ".join(html.escape(str(name or "no scenario")) for name in elsewhere)
        note = (f'<p class="lead">Only the runs that played the same scenario'
                f'{f" ({html.escape(scenario)})" if scenario else ""} are compared here; runs '
                f"of other scenarios ({others}) are compared with their own, since figures of "
                f"different scenarios side by side compare the scenarios, not the breakers.</p>")
    return render(
        "comparison.html",
        id=html.escape(section_id),
        heading=html.escape(heading),
        note=note,
        legend=render("legend.html"),
        table=kpi_table_html(kpis, table_id=f"{section_id}-kpis"),
        figures=_figures_html(figures),
    )


def run_section(
    index: int, run: Run, label: str, kpis: pd.DataFrame, figures: Sequence[ReportFigure],
    data_href: str | None,
) -> str:
    """One run: metadata, key figures (variants compared when several), its figures."""
    sid = f"run-{index}"
    note = render("variants-note.html", legend=render("legend.html")) if len(kpis) > 1 else ""
    kind = html.escape(run.meta.kind)
    return render(
        "run.html",
        id=sid,
        label=html.escape(label),
        kind=kind,
        meta=meta_html(run, index, data_href),
        note=note,
        table=kpi_table_html(kpis, table_id=f"{sid}-kpis"),
        source=kpi_source_html(kpis),
        figures=_figures_html(figures),
    )


def glossary_html() -> str:
    """What the figures mean: `cblab.analysis.GLOSSARY`, the README's list."""
    items = "".join(f"<dt>{html.escape(term)}</dt><dd>{html.escape(text)}</dd>"
                    for term, text in GLOSSARY)
    return (f'<section id="glossary"><h2>What the figures mean</h2>'
            f'<dl class="glossary">{items}</dl></section>')
