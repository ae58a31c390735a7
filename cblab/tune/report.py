"""The tuning loop's HTML report: one self-contained page from a `TuneResult`.

    from cblab.tune.report import write_tune_report
    write_tune_report(result, "tune-report")     # tune-report/index.html, config.json

or `cblab tune RUN --report DIR`. Sections, one renderer each: the pick against the
current config (with 95 % CIs), the fit's quality (observed vs fitted per phase), the
sweep (heatmaps per variant), the verification when `result.verification` is set
(duck-typed: `.table()` with columns kpi, live, predicted_low, predicted_high,
inside, and `.warnings`), and what the loop cost in time.

The page reuses the run report's machinery (`cblab.report`: page template,
stylesheet, figure renderer, plotly.js loader); the figures are
`cblab.tune.figures`' and the numbers `cblab.tune.loop`'s tables. Each number
in a table carries its exact value in ``data-value`` (what the tests compare).
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import json
import math
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any

from cblab import __version__
from cblab.report.figures import ReportFigure
from cblab.report.sections import PlotlyJs, figure_html, nav_html, plotlyjs_html
from cblab.report.templates import render, stylesheet

from .figures import fit_figure, heatmap_figure, pick_figure
from .loop import fit_quality_table

if TYPE_CHECKING:
    import pandas as pd

    from .loop import TuneResult

__all__ = ["REPORT_FILE", "SECTIONS", "build_tune_report", "write_tune_report"]

REPORT_FILE = "index.html"
CONFIG_FILE = "config.json"


@functools.cache
def _asset(name: str) -> str:
    path = resources.files(__package__).joinpath("assets", name)
    return path.read_text(encoding="utf-8").removesuffix("\n")


def _section(sid: str, heading: str, lead: str, body: str) -> str:
    return Template(_asset("section.html")).substitute(
        id=sid, heading=html.escape(heading), lead=lead, body=body)


def _number(value: Any, share: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if share:
        return f"{value:.2%}"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.3g}" if abs(value) < 10 else f"{value:,.1f}"


def _cell(value: Any, share: bool = False) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"<td>{html.escape(str(value))}</td>"
    return f'<td class="num" data-value="{float(value)!r}">{_number(value, share)}</td>'


def _table(frame: pd.DataFrame, table_id: str, shares: Sequence[str] = (),
           index: bool = True) -> str:
    head = ([html.escape(str(frame.index.name or ""))] if index else []) + [
        html.escape(str(c)) for c in frame.columns]
    rows = []
    for key, row in frame.astype(object).iterrows():  # object: ints stay ints
        cells = [f"<th>{html.escape(str(key))}</th>"] if index else []
        cells += [_cell(v.item() if hasattr(v, "item") else v, c in shares)
                  for c, v in row.items()]
        rows.append(f"<tr>{''.join(cells)}</tr>")
    return (f'<div class="table-wrap"><table id="{table_id}"><thead><tr>'
            + "".join(f"<th>{h}</th>" for h in head) + "</tr></thead><tbody>"
            + "".join(rows) + "</tbody></table></div>")


def _figure(fid: str, title: str, figure: Any, caption: str) -> str:
    return figure_html(ReportFigure(fid, title, figure, caption))


def pick_section(result: TuneResult) -> str:
    """The pick against the current config: per variant and worst case, with CIs."""
    objective = result.objective
    share = objective.higher_is_better
    table = result.pick_table()
    shares = [c for c in table.columns if not c.endswith("_wasted")] if share else []
    constraint = (f"; only settings whose worst variant wastes at most "
                  f"{objective.max_wasted:g} calls" if objective.max_wasted is not None else "")
    weights = ("" if share else f" (a failed call costs {objective.cost_failed:g}, a wasted "
               f"call {objective.cost_wasted:g}, a refused call {objective.cost_refused:g})")
    lead = (f"Objective: {html.escape(objective.label)}{html.escape(weights)}"
            f"{html.escape(constraint)}. The pick is the setting whose worst variant is best; "
            f"mean and 95 % confidence interval over {result.seeds} seed(s) per variant.")
    body = (
        "<h3>Picked configuration</h3>"
        f'<pre class="config" id="pick-config">{html.escape(json.dumps(result.config, indent=2))}'
        "</pre>"
        f"<p>Pick <code>{html.escape(str(result.pick.setting))}</code> against the current "
        f"<code>{html.escape(str(result.current.setting))}</code>.</p>"
        + _table(table, "pick-table", shares)
        + _figure("pick-ci", "Pick vs current, per variant", pick_figure(result),
                  "Mean over seeds (dots) with the 95 % confidence interval (bars): the pick "
                  "and the current config on the same variants and seeds."))
    return _section("pick", "The pick", lead, body)


def fit_section(result: TuneResult) -> str:
    """How well the fitted profile matches the traffic, per phase."""
    fit = result.fit
    quality = fit.quality().reset_index()
    quality = quality.drop(columns=[c for c in ("error_rate_95ci", "latency")
                                    if c in quality]).set_index("phase")
    warmup = (f" {fit.warmup.dropped} calls of a client warm-up stall were left out."
              if fit.warmup else "")
    lead = (f"{len(fit.phases)} phase(s) fitted from {html.escape(result.source)}: per phase "
            "the error rate and a latency distribution (the candidate with the smallest "
            f"Kolmogorov-Smirnov distance, ks).{html.escape(warmup)}")
    body = (_table(quality, "fit-table", ["error_rate"])
            + _table(fit_quality_table(result), "fit-quantiles", index=False)
            + _figure("fit-quality", "Observed vs fitted latency", fit_figure(result),
                      "Per phase, the observed latency quantiles of the answered calls (bars) "
                      "and the fitted distribution's (diamonds)."))
    return _section("fit", "Fit quality", lead, body)


def sweep_section(result: TuneResult) -> str:
    """The search: what was simulated, and the objective over the two main settings."""
    search = result.search
    variants = ", ".join(html.escape(v) for v in result.variant_names)
    settings = ", ".join(f"{html.escape(k)} ∈ {html.escape(str(v))}"
                         for k, v in result.grid.items())
    lead = (f"Settings {settings}; variants {variants}; {result.seeds} seed(s). "
            f"{html.escape(str(search.get('search')))} search: {search.get('runs', 0):,} "
            f"simulated runs in {search.get('wall_s', 0):.1f} s "
            f"({html.escape(str(search.get('executor', '?')))}).")
    caption = ("The objective's mean over seeds; the first panel is each setting's worst "
               "variant (what the pick optimises), the cross the pick. Blank cells were not "
               "tried or break the wasted-calls limit.")
    if len(result.settings) > 2:
        caption += " Each cell holds the best over the other settings."
    body = _figure("sweep-heatmaps", "The objective per variant", heatmap_figure(result),
                   caption)
    return _section("sweep", "The sweep", lead, body)


def verification_section(result: TuneResult) -> str:
    """Live KPIs after applying the pick, against the simulator's predicted range."""
    verification = result.verification
    table = verification.table().set_index("kpi")
    inside = table["inside"].astype(bool)
    rows = []
    for kpi, row in table.iterrows():
        ok = bool(inside[kpi])
        rows.append(
            f"<tr><th>{html.escape(str(kpi))}</th>{_cell(float(row['live']))}"
            f"{_cell(float(row['predicted_low']))}{_cell(float(row['predicted_high']))}"
            f'<td class="{"inside" if ok else "outside"}">{"inside" if ok else "outside"}'
            "</td></tr>")
    body = ('<div class="table-wrap"><table id="verification-table"><thead><tr><th>kpi</th>'
            "<th>live</th><th>predicted low</th><th>predicted high</th><th></th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")
    warnings = list(getattr(verification, "warnings", []) or [])
    if warnings:
        body += ('<ul class="warnings">'
                 + "".join(f"<li>{html.escape(str(w))}</li>" for w in warnings) + "</ul>")
    lead = (f"{int(inside.sum())} of {len(table)} live KPI(s) inside the range the simulator "
            "predicted over its seeds.")
    return _section("verification", "Verification", lead, body)


def timings_section(result: TuneResult) -> str:
    import pandas as pd

    frame = pd.DataFrame({"seconds": result.timings}).rename_axis("step")
    return _section("timings", "What it took", "Wall time of each step of the loop.",
                    _table(frame, "timings-table"))


#: (section id, heading, renderer, shown when)
SECTIONS: tuple[tuple[str, str, Callable[[TuneResult], str], Callable[[TuneResult], bool]],
                ...] = (
    ("pick", "The pick", pick_section, lambda r: True),
    ("fit", "Fit quality", fit_section, lambda r: True),
    ("sweep", "The sweep", sweep_section, lambda r: True),
    ("verification", "Verification", verification_section,
     lambda r: r.verification is not None),
    ("timings", "What it took", timings_section, lambda r: True),
)


def build_tune_report(result: TuneResult, *, plotlyjs: PlotlyJs = "inline",
                      title: str | None = None) -> str:
    """The report page as an HTML string (nothing written)."""
    if plotlyjs not in ("inline", "cdn"):
        raise ValueError(f"plotlyjs must be 'inline' or 'cdn', got {plotlyjs!r}")
    shown = [(sid, heading, build) for sid, heading, build, when in SECTIONS if when(result)]
    generated = dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    title = title or f"cblab tune: {result.source}"
    return render(
        "page.html", title=html.escape(title),
        css=stylesheet() + "\n" + _asset("tune.css"),
        plotlyjs=plotlyjs_html(plotlyjs),
        subtitle=html.escape(f"the tuning loop · generated {generated} by cblab {__version__}"),
        nav=nav_html([(sid, heading) for sid, heading, _ in shown]),
        body="\n".join(build(result) for _, _, build in shown))


def write_tune_report(result: TuneResult, directory: str | Path, *,
                      plotlyjs: PlotlyJs = "inline") -> Path:
    """Write `directory`/index.html and the picked config.json; the page's path."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    (out / CONFIG_FILE).write_text(json.dumps(result.config, indent=2) + "\n", encoding="utf-8")
    page = out / REPORT_FILE
    page.write_text(build_tune_report(result, plotlyjs=plotlyjs), encoding="utf-8")
    return page
