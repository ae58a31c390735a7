"""HTML reports: recorded runs in, one self-contained HTML page out.

The page holds, per run, its metadata, a KPI table and the figures of
`cblab.plots` (state timeline, latency over time and per phase, success rate,
backend load); for several runs, a comparison table with differences coloured
and the runs side by side on shared figures. plotly.js is inlined once (the page
works offline) or loaded from the CDN (a small file that needs the network).

Where things are: this module assembles the page; `sections` renders each part
of it from the templates and stylesheet in `assets/` (`templates`); `figures`
chooses the figures, `tables` renders the tables; `files` writes a report and
its data to disk, `png` exports the figures as images.
"""

from __future__ import annotations

import datetime as dt
import html
from collections.abc import Sequence

from cblab import __version__
from cblab.runs import Run

from . import sections
from .figures import comparison_groups, comparison_id, report_figures, run_labels
from .kpis import run_kpis
from .sections import PlotlyJs
from .tables import combined_kpis
from .templates import render, stylesheet

__all__ = ["PlotlyJs", "ReportError", "build_report"]


class ReportError(ValueError):
    """A report cannot be built from these inputs (the message says why)."""


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
    labels = run_labels(runs)
    if title is None:
        title = (
            f"cblab report: {labels[0]}" if len(runs) == 1 else f"cblab report: {len(runs)} runs"
        )
    kpis = [run_kpis(run) for run in runs]
    figures = report_figures(runs)
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")

    toc: list[tuple[str, str]] = []
    body = []
    groups = comparison_groups(runs)
    compared = [(name, members) for name, members in groups if len(members) > 1]
    for k, (name, members) in enumerate(compared):
        sid = comparison_id(k, len(compared))
        elsewhere = [other for other, _ in groups if other != name]
        toc.append((sid, "Comparison" + (f": {name}" if name and elsewhere else "")))
        body.append(sections.comparison_section(
            combined_kpis([runs[i] for i in members], [labels[i] for i in members],
                          [kpis[i] for i in members]),
            figures[sid], section_id=sid, scenario=name, elsewhere=elsewhere,
        ))
    if len(runs) > 1 and not compared:
        names = ", ".join(html.escape(str(name or "no scenario")) for name, _ in groups)
        toc.append(("comparison", "Comparison"))
        body.append(
            f'<section id="comparison" class="card"><h2>Comparison</h2><p class="lead">No two '
            f"of these runs played the same scenario ({names}): they are not compared side "
            "by side, since that would compare the scenarios, not the breakers.</p></section>")
    for i, (run, label, frame) in enumerate(zip(runs, labels, kpis, strict=True), start=1):
        toc.append((f"run-{i}", label))
        href = data_dirs[i - 1] if data_dirs is not None else None
        body.append(sections.run_section(i, run, label, frame, figures[f"run-{i}"], href))
    toc.append(("glossary", "What the figures mean"))
    body.append(sections.glossary_html())
    return render(
        "page.html",
        title=html.escape(title),
        css=stylesheet(),
        plotlyjs=sections.plotlyjs_html(plotlyjs),
        subtitle=html.escape(
            f"{len(runs)} run{'s' if len(runs) != 1 else ''} · generated {generated} "
            f"by cblab {__version__}"
        ),
        nav=sections.nav_html(toc),
        body="\n".join(body),
    )
