"""MkDocs hook: static figures on the tutorial pages ("What you will see").

The tutorial pages are the notebooks, rendered without executing them (their live
cells need a running stack), so on their own they show text and code but no
figure. This hook adds a short section after each notebook's introduction with
1-3 figures built at site-build time, from the shipped recorded runs
(`cblab.runs.shipped_runs()`, recorded live on the real stack) or from the
seeded simulator, by the same figure builders the notebooks and reports call
(`cblab.plots`, `cblab.report`, `cblab.lab`). Each figure is plain HTML
(`fig.to_html(include_plotlyjs=False)`); plotly.js is written once into the
site (`PLOTLY_JS`) and each page refers to it by a relative path, so the site
still opens from disk with no network request.

Figures are built once per build (the cache is emptied when a build starts) and
are deterministic: seeded simulations, fixed div ids. `tests/docs/test_figures.py`
checks a figure's data against the run's rows, computed without cblab.
"""

from __future__ import annotations

import html
import posixpath
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

#: plotly.js inside the built site (written once per build, ~4.8 MB).
PLOTLY_JS = "assets/javascripts/plotly.min.js"

#: The seed of every simulation shown (the notebooks' default `LabParams.seed`).
SEED = 1

SECTION_ID = "what-you-will-see"
SECTION_TITLE = "What you will see"


@dataclass(frozen=True)
class Shown:
    """What a page shows of one figure."""

    figure: Any  # a plotly Figure
    title: str
    caption: str


@dataclass(frozen=True)
class DocFigure:
    """One static figure: `key` is its HTML id; `sources` what its data comes from
    (run directories relative to the repository, or the simulation it ran)."""

    key: str
    sources: tuple[str, ...]
    make: Callable[[], Shown]


def _figure(key: str, title: str, caption: str, sources: tuple[str, ...],
            build: Callable[[], Any]) -> DocFigure:
    return DocFigure(key, sources, lambda: Shown(build(), title, caption))


# --- the data: shipped runs, loaded once per build ---------------------------------

@cache
def run(name: str) -> Any:
    """A shipped run by name (`data/runs/<name>`)."""
    from cblab.runs import load_run, shipped_runs

    paths = {Path(p).name: Path(p) for p in shipped_runs()}
    if name not in paths:
        raise KeyError(f"no shipped run {name!r}; shipped: {', '.join(sorted(paths))}")
    return load_run(paths[name])


def run_source(name: str) -> str:
    return f"data/runs/{name}"


@cache
def _report_figures(*names: str) -> dict[str, Any]:
    """The report's figures for these runs, by kind ("state_timeline", ...): the
    comparison section's for two runs or more, the run's own section for one."""
    from cblab.report.figures import report_figures

    sections = report_figures([run(n) for n in names])
    sid = "comparison" if len(names) > 1 else "run-1"
    return {f.id.removeprefix(f"{sid}-"): f for f in sections[sid]}


def _from_report(key: str, kind: str, *names: str, title: str | None = None) -> DocFigure:
    """A figure exactly as `cblab report` draws it for these runs, with its caption."""
    def make() -> Shown:
        shown = _report_figures(*names)[kind]
        return Shown(shown.figure, title or shown.title, shown.caption)

    return DocFigure(key, tuple(run_source(n) for n in names), make)


def _hang_latency() -> Shown:
    """01: both hang runs' latency per request on a log axis, as notebook 01 draws
    its simulated pair (`plots.latency_scatter(events, log_y=True)`), with the
    report's caption (what the rejected calls' waits measured)."""
    from cblab import plots
    from cblab.report.figures import refusal_caption

    both = plots.combine_events({n: run(n).events for n in HANG})
    caption = ("Every request's latency as the caller saw it, from when the call was due, "
               "coloured by outcome: the unprotected server's calls wait for the deadline "
               f"while the backend hangs. {refusal_caption(both)}")
    return Shown(plots.latency_scatter(both, log_y=True, title=None),
                 "Latency per request (log scale)", caption.strip())


# --- the simulator, seeded ----------------------------------------------------------

def _policies() -> Any:
    from cblab.lab import compare_policies

    return compare_policies(error_rate=0.02, rate=20, duration=600, seed=SEED).figure()


def _tuning_heatmaps() -> Any:
    from cblab.lab.tuning import heatmaps, sweep_grid, with_background_errors

    scenario = with_background_errors("outage-and-recovery", 0.05)
    return heatmaps(sweep_grid(scenario, quick=True, seeds=(SEED,)))


def _retries() -> Any:
    from cblab.lab import RetrySpec, compare_retries

    return compare_retries(RetrySpec(duration=60, seed=SEED)).figure()


def _bulkheads() -> Any:
    from cblab.lab import BulkheadSpec, compare_bulkheads

    return compare_bulkheads(BulkheadSpec(duration=60, seed=SEED)).figure()


#: Notebook 07's settings (its interactive values, not the quick CI ones).
REPLICA_CONFIG = {"failure_threshold": 3, "timeout": 3.0, "half_open_max_calls": 2,
                  "success_threshold": 2}
REPLICAS = (1, 2, 4, 8, 16, 32)


@cache
def replica_table() -> Any:
    from cblab import CircuitBreakerConfig
    from cblab.sim.replicas import replica_sweep

    return replica_sweep(list(REPLICAS), config=CircuitBreakerConfig(**REPLICA_CONFIG))


def _replicas(column: str, title: str) -> Callable[[], Any]:
    def build() -> Any:
        import plotly.express as px

        return px.line(replica_table(), x="replicas", y=column, color="store", markers=True,
                       log_x=True, title=title)
    return build


#: 08: a shipped run stands in for "your server": its load rows are fitted into a
#: scenario and swept, as notebook 08's last cells do with the lab's own traffic.
FIT_RUN = "outage-and-recovery-unprotected"


def _fitted_sweep() -> Any:
    from cblab.faults.fit import fit_run
    from cblab.lab.tuning import SWEEP_SCORES, heatmaps
    from cblab.sim.sweep import sweep

    recorded = run(FIT_RUN)
    fit = fit_run(recorded.events.to_dict("records"),
                  deadline_s=recorded.meta.extra.get("deadline_s"))
    table = sweep({"failure_threshold": [3, 5, 10], "timeout": [5, 30]},
                  [fit.scenario("your-server")], seeds=range(3), workers=1, progress=False)
    return heatmaps(table, SWEEP_SCORES)


RECORDING = "data/recordings/weather-outage"


@cache
def _tuned() -> Any:
    """Notebook 09's loop on the shipped recording, with a smaller grid and 2 seeds."""
    from cblab.runs import read_event_rows
    from cblab.tune import Objective, tune

    rows, meta = read_event_rows(ROOT / RECORDING)
    return tune(rows, meta, name="weather",
                phases=[("healthy", 0, 30), ("outage", 30, 60), ("recovery", 60, 90)],
                grid={"failure_threshold": [2, 5, 10, 20], "timeout": [2.0, 10.0, 30.0]},
                objective=Objective("cost"), seeds=2, workers=1)


def _tune_fit() -> Any:
    from cblab.tune.figures import fit_figure

    return fit_figure(_tuned())


def _tune_heatmaps() -> Any:
    return _tuned().heatmap_figure()


# --- which figures each tutorial page gets ------------------------------------------

OUTAGE = ("outage-and-recovery-protected", "outage-and-recovery-unprotected")
HANG = ("hang-protected", "hang-unprotected")
SIM = f"cblab.sim (seed {SEED})"

PAGES: dict[str, tuple[str, list[DocFigure]]] = {
    "00-index": (
        "The lab in one picture: the shipped `outage-and-recovery` scenario recorded live "
        "against a protected and an unprotected demo server.",
        [_from_report("fig-00-latency", "latency_distribution", *OUTAGE,
                      title="Latency per phase, protected vs unprotected")],
    ),
    "01-why-circuit-breakers": (
        "The notebook's experiment, recorded live on the real stack (`cblab record`): the "
        "shipped `hang` scenario played against the protected and the unprotected server.",
        [
            _from_report("fig-01-state", "state_timeline", *HANG),
            DocFigure("fig-01-latency", tuple(run_source(n) for n in HANG), _hang_latency),
            _from_report("fig-01-load", "backend_load", *HANG),
        ],
    ),
    "02-state-machine": (
        "The notebook's policy comparison (seeded): four counting policies on the same "
        "stream of calls to a healthy service with 2 % errors.",
        [_figure("fig-02-policies", "Four policies, one healthy service",
                   "`compare_policies(error_rate=0.02, rate=20, duration=600, seed=1)`: "
                   "only the cumulative count keeps tripping.", (SIM,), _policies)],
    ),
    "03-live-lab": (
        "The live lab's charts, drawn from a run recorded live on the real stack "
        "(`cblab record`): the shipped `outage-and-recovery` scenario against the "
        "protected server.",
        [
            _from_report("fig-03-state", "state_timeline", OUTAGE[0]),
            _from_report("fig-03-latency", "latency_scatter", OUTAGE[0]),
            _from_report("fig-03-load", "backend_load", OUTAGE[0]),
        ],
    ),
    "04-tuning": (
        "The notebook's first sweep, small: `failure_threshold` x `timeout` on "
        "`outage-and-recovery` with 5 % background errors, one seed.",
        [_figure("fig-04-heatmaps", "Sweep heatmaps (4 x 3 settings)",
                   "`heatmaps(sweep_grid(scenario, quick=True))`: green is good in every "
                   "panel; the outlined cell is the balanced pick.", (SIM,),
                   _tuning_heatmaps)],
    ),
    "05-related-patterns": (
        "The notebook's two virtual-time comparisons (short, seeded).",
        [
            _figure("fig-05-retries", "Retries, with and without a breaker",
                      "`compare_retries(RetrySpec(duration=60, seed=1))`: retries keep the "
                      "queue full after the incident (shaded); behind a breaker they do not.",
                      (SIM,), _retries),
            _figure("fig-05-bulkheads", "Bulkheads",
                      "`compare_bulkheads(BulkheadSpec(duration=60, seed=1))`: the hanging "
                      "`orders` calls take every worker of a shared pool and starve the "
                      "healthy `users`; a bulkhead keeps them in their compartment.", (SIM,),
                      _bulkheads),
        ],
    ),
    "06-reports": (
        "The comparison charts of the report the notebook writes, for the two shipped "
        "`outage-and-recovery` runs.",
        [
            _from_report("fig-06-state", "state_timeline", *OUTAGE),
            _from_report("fig-06-success", "success_rate", *OUTAGE),
            _from_report("fig-06-load", "backend_load", *OUTAGE),
        ],
    ),
    "07-replicas": (
        "The notebook's replica sweep on virtual time (1 to 32 replicas, local breakers "
        "vs one shared breaker).",
        [
            _figure("fig-07-failing", "Failing calls until every replica stopped",
                      "Local breakers pay `failure_threshold` per replica; a shared one "
                      "stays flat.", (SIM,),
                      _replicas("failing_until_stopped",
                                "Failing calls until every replica stopped calling")),
            _figure("fig-07-probes", "Probes against the recovered service",
                      "Every local breaker probes on its own; the shared one sends "
                      "`half_open_max_calls` trials in all.", (SIM,),
                      _replicas("probes_after_recovery",
                                "Trial calls (probes) against the recovered service")),
        ],
    ),
    "08-your-server": (
        f"The notebook's analysis on recorded traffic: the load rows of "
        f"`data/runs/{FIT_RUN}` stand in for your server's, fitted into a scenario and "
        "swept on the simulator.",
        [_figure("fig-08-sweep", "A sweep on the fitted scenario",
                   "`fit_run(...)` then `sweep(...)` over 3 seeds, drawn with notebook "
                   "04's heatmaps.", (run_source(FIT_RUN), SIM), _fitted_sweep)],
    ),
    "09-tune-your-breaker": (
        f"The notebook's loop on the shipped recording (`{RECORDING}`: the example weather "
        "server through a 30 s outage), with 2 seeds instead of 3.",
        [
            _figure("fig-09-fit", "Observed vs fitted latency",
                      "`fit_figure(result)`: per phase, the observed latency quantiles (bars) "
                      "and the fitted distribution's (diamonds).", (RECORDING,), _tune_fit),
            _figure("fig-09-heatmaps", "Cost per 1,000 requests, per stress variant",
                      "`result.heatmap_figure()`: the first panel is each setting's worst "
                      "variant, what the pick (the cross) minimises.", (RECORDING, SIM),
                      _tune_heatmaps),
        ],
    ),
}


# --- rendering ------------------------------------------------------------------------

_built: dict[str, str] = {}


def figure_html(fig: DocFigure) -> str:
    """The figure as an HTML fragment (built once per build)."""
    if fig.key not in _built:
        shown = fig.make()
        plot = _legend_below(shown.figure).to_html(
            full_html=False, include_plotlyjs=False, div_id=fig.key,
            default_width="100%", config={"displaylogo": False, "responsive": True},
        )
        sources = ", ".join(f"`{s}`" for s in fig.sources)
        # a figure with a title of its own needs no heading above it
        heading = "" if shown.figure.layout.title.text else (
            f"<p><strong>{html.escape(shown.title)}</strong></p>\n")
        _built[fig.key] = (
            f'<div class="cblab-figure" data-cblab-figure="{fig.key}" '
            f'data-cblab-source="{html.escape(" ".join(fig.sources))}">\n'
            f"{heading}{plot}\n"
            f"<p><em>{_inline_code(shown.caption)} Data: {_inline_code(sources)}.</em></p>\n"
            "</div>"
        )
    return _built[fig.key]


def _legend_below(figure: Any) -> Any:
    """A legend on the right takes a third of the page's narrow column: put it under
    the plot, in rows, and make the figure as much taller."""
    legend = figure.layout.legend
    if legend.orientation == "h" or not any(t.showlegend is not False for t in figure.data):
        return figure
    height = figure.layout.height or 450
    return figure.update_layout(
        height=height + 70,
        legend={"orientation": "h", "x": 0, "xanchor": "left", "y": -70 / height - 0.12,
                "yanchor": "top"},
    )


def _inline_code(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text, quote=False))


def section_html(stem: str, page_url: str) -> str:
    """The "What you will see" section of the tutorial `stem` ("01-why-...")."""
    intro, figures = PAGES[stem]
    plotly_src = posixpath.relpath(PLOTLY_JS, posixpath.dirname(page_url) or ".")
    parts = [
        f'<div class="cblab-figures" id="{SECTION_ID}-section">',
        f'<h2 id="{SECTION_ID}">{SECTION_TITLE}</h2>',
        f"<p>{_inline_code(intro)} Built with this site from the data named under "
        "each figure, by cblab's own figure builders (those the notebooks and reports "
        "call); run the notebook to draw them yourself.</p>",
        f'<script src="{plotly_src}"></script>',
        *(figure_html(f) for f in figures),
        "</div>",
    ]
    return "\n".join(parts)


_CELL = re.compile(r'<div\s+class="jp-Cell\b')


def insert_section(content: str, section: str) -> str:
    """After the notebook's first cell (its introduction), else at the end."""
    cells = list(_CELL.finditer(content))
    if len(cells) < 2:
        return content + section
    at = cells[1].start()
    return content[:at] + section + content[at:]


def _add_to_toc(page: Any) -> None:
    from mkdocs.structure.toc import AnchorLink

    link = AnchorLink(SECTION_TITLE, SECTION_ID, 2)
    items = page.toc.items
    if items and items[0].level == 1:
        items[0].children.insert(0, link)
    else:
        items.insert(0, link)


def tutorial_stem(page: Any) -> str | None:
    src = page.file.src_uri
    if not src.startswith("tutorials/notebooks/") or not src.endswith(".ipynb"):
        return None
    stem = posixpath.basename(src)[: -len(".ipynb")]
    return stem if stem in PAGES else None


# --- MkDocs events ------------------------------------------------------------------------

def on_pre_build(config: Any) -> None:
    """A fresh cache per build: `mkdocs serve` rebuilds see new runs and code."""
    _built.clear()
    run.cache_clear()
    _report_figures.cache_clear()
    replica_table.cache_clear()


def on_page_content(content: str, page: Any, config: Any, files: Any) -> str:
    stem = tutorial_stem(page)
    if stem is None:
        return content
    _add_to_toc(page)
    return insert_section(content, section_html(stem, page.url))


def on_post_build(config: Any) -> None:
    from plotly.offline import get_plotlyjs

    target = Path(config["site_dir"]) / PLOTLY_JS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(get_plotlyjs(), encoding="utf-8")
