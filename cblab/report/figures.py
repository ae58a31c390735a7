"""The report's figures: which `cblab.plots` figures a run (or a comparison of
runs) gets, with their titles, captions, rolling windows and ids."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from cblab.analysis import AnalysisError, refusal_waits
from cblab.plots import (
    backend_load,
    latency_distribution,
    latency_scatter,
    state_timeline,
    success_rate,
)
from cblab.plots.traces import combine_events, run_end
from cblab.runs import Run

from .kpis import unprotected_variants

__all__ = [
    "ReportFigure",
    "comparison_groups",
    "comparison_id",
    "dependency_name",
    "refusal_caption",
    "report_figures",
    "run_dir_name",
    "run_labels",
]


@dataclass
class ReportFigure:
    """One figure of a report: `id` is its HTML id and its PNG file name."""

    id: str
    title: str
    figure: go.Figure
    caption: str = ""


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


def run_dir_name(index: int, run: Run) -> str:
    """The directory a run's data is copied to: `NN-<slug of its name>`."""
    return f"{index:02d}-{_slug(run.name)}"


def _window_s(duration: float) -> float:
    """A rolling window (s) fit for a run of `duration` seconds: ~1/20 of it, 1-10 s."""
    return float(min(max(round(duration / 20), 1), 10))


def _bin_s(duration: float) -> float:
    return 0.5 if duration <= 40 else 1.0 if duration <= 240 else 5.0


_CAPTIONS = {
    "state_timeline": "Breaker state over time, a band per breaker: closed (green), "
    "half-open (amber), open (red). Shaded columns are the scenario's phases.",
    "latency_scatter": "Every request's latency as the caller saw it, from when the call "
    "was due, coloured by outcome.",
    "latency_distribution": "Latency per scenario phase as the caller saw it (box: "
    "quartiles and median, dashed line: mean, whiskers to 1.5 IQR, dots: outliers).",
    "success_rate": "Share of calls that returned a result, over a trailing window.",
    "backend_load": "Requests per second that reached the $dependency (solid) and that "
    "clients offered (dotted): the gap is the load the breaker shed.",
}


def dependency_name(runs: Sequence[Run]) -> str:
    """What the runs' calls reached: "target" (someone's own MCP server behind cblab's
    fault proxy: the live lab records it as `extra.target`) or cblab's demo "backend"."""
    return "target" if runs and all(run.meta.extra.get("target") for run in runs) else "backend"


def _figures_for(
    events: pd.DataFrame, prefix: str, duration: float, unprotected: Sequence[str] = (),
    dependency: str = "backend",
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
        ("backend_load", f"Load reaching the {dependency}",
         lambda: backend_load(events, bin_s, dependency=dependency)),
    ]
    out = []
    for name, title, build in builders:
        fig = build()
        fig.update_layout(title=None, margin_t=max(fig.layout.margin.t or 0, 40) - 20)
        caption = _CAPTIONS[name].replace("$dependency", dependency)
        if name == "latency_scatter":
            caption = f"{caption} {refusal_caption(events)}".strip()
        out.append(ReportFigure(f"{prefix}-{name}", title, fig, caption))
    return out


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.1 else f"{seconds:.2f} s"


def refusal_caption(events: pd.DataFrame) -> str:
    """What the rejected calls' points mean, measured (`cblab.analysis.refusal_waits`):
    the breaker refuses in microseconds; a caller's wait beyond that is queueing before
    the refusal reached it, and the caption says so when it is most of the wait."""
    try:
        waits = refusal_waits(events)
    except AnalysisError:  # rows analysis refuses: the KPI table says why
        return ""
    waits = waits[waits["refusals"] > 0]
    if waits.empty:
        return ""
    parts = []
    queued = False
    for row in waits.itertuples():
        who = "" if len(waits) == 1 else f"{row.variant}: "
        if row.breaker_p50_s == row.breaker_p50_s:  # the breaker's own rows are there
            text = (f"{who}the breaker refused in a median {_ms(row.breaker_p50_s)}, callers "
                    f"waited a median {_ms(row.caller_p50_s)} for the refusal")
            queued = queued or (row.outside_share > 0.5 and row.caller_p50_s > 0.05)
        else:
            text = f"{who}callers waited a median {_ms(row.caller_p50_s)} for a refusal"
        parts.append(text)
    caption = "Rejected calls: " + "; ".join(parts) + "."
    if queued:
        caption += (" Most of that wait is queueing before the refusal reached the caller "
                    "(the load generator's own backlog of due calls, the network and the "
                    "server's HTTP stack), not the breaker: it fails fast.")
    else:
        caption += " They fail fast: they never wait for the backend."
    return caption


def _run_duration(run: Run) -> float:
    return float(run.meta.duration_s or run_end(run.events) or 1.0)


def comparison_groups(runs: Sequence[Run]) -> list[tuple[str | None, list[int]]]:
    """Which runs a report compares: those that played the same scenario, in order of
    first appearance, as (scenario name or None, run indices). Figures of runs of
    different scenarios side by side would compare the scenarios, not the breakers.
    Runs that record no scenario go with the others when at most one scenario is
    named (nothing says they differ), else form a group of their own."""
    groups: dict[str | None, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault(run.meta.scenario_name, []).append(i)
    if len([name for name in groups if name is not None]) <= 1:
        return [(next((n for n in groups if n is not None), None), list(range(len(runs))))]
    return list(groups.items())


def comparison_id(k: int, groups: int) -> str:
    """The section id of the k-th comparison (0-based): "comparison" when there is one."""
    return "comparison" if groups == 1 else f"comparison-{k + 1}"


def report_figures(runs: Sequence[Run]) -> dict[str, list[ReportFigure]]:
    """Every figure of the report, by section id ("comparison" or "comparison-1",
    "comparison-2"... for runs of several scenarios, then "run-1", "run-2"...)."""
    sections: dict[str, list[ReportFigure]] = {}
    labels = run_labels(runs)
    groups = [(name, members) for name, members in comparison_groups(runs) if len(members) > 1]
    for k, (_, members) in enumerate(groups):
        chosen = [runs[i] for i in members]
        names = [labels[i] for i in members]
        combined = combine_events(
            {label: run.events for label, run in zip(names, chosen, strict=True)}
        )
        unprotected = [
            label if len(run.variants) <= 1 else f"{label} · {v}"
            for label, run in zip(names, chosen, strict=True)
            for v in unprotected_variants(run)
        ]
        duration = max(_run_duration(r) for r in chosen)
        sid = comparison_id(k, len(groups))
        sections[sid] = [
            f
            for f in _figures_for(combined, sid, duration, unprotected, dependency_name(chosen))
            if not f.id.endswith("latency_scatter")  # one scatter per run is enough
        ]
    for i, run in enumerate(runs, start=1):
        sections[f"run-{i}"] = _figures_for(
            run.events, f"run-{i}", _run_duration(run), unprotected_variants(run),
            dependency_name([run]),
        )
    return sections
