"""Notebook 04: sweep `failure_threshold` x `timeout` in the simulator, draw heatmaps.

`sweep_grid` plays a scenario on virtual time for every pair of settings (and
several seeds) and scores each run:

- availability: the share of callers' requests that succeeded;
- wasted load: calls that reached the backend while it was failing (the load a
  breaker exists to shed), per second of fault;
- recovery: seconds from the end of the faults until the breaker is closed again
  (0 when it was closed already).

- false trips: trips while the service was healthy (`with_background_errors`
  gives the healthy phases the small error rate real services have).

`heatmaps` draws one heatmap per score; `best_config` makes a balanced pick.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "SCORES",
    "SWEEP_SCORES",
    "Score",
    "best_config",
    "fault_phases",
    "fault_window",
    "heatmaps",
    "score_run",
    "sweep_grid",
    "with_background_errors",
]


@dataclass(frozen=True)
class Score:
    column: str
    title: str
    better: str  # "higher" or "lower"
    fmt: str  # plotly text format


SCORES: tuple[Score, ...] = (
    Score("availability", "Availability: requests that succeeded", "higher", ".1%"),
    Score("false_trips", "False trips: trips while the service was healthy", "lower", ".1f"),
    Score("wasted_per_s", "Wasted load: failed backend calls per s of fault", "lower", ".1f"),
    Score("recovery_s", "Recovery: s from the end of the faults to CLOSED", "lower", ".1f"),
)


#: Scores for `cblab.sim.sweep.sweep` output (its KPIs are `cblab.analysis`'s).
SWEEP_SCORES: tuple[Score, ...] = (
    Score("availability", "Availability: requests that succeeded", "higher", ".1%"),
    Score("flaps", "Flaps: trips soon after closing", "lower", ".1f"),
    Score("wasted_share", "Wasted: calls into a failing backend (share)", "lower", ".1%"),
    Score("recovery_s", "Recovery: s from the end of the faults to CLOSED", "lower", ".1f"),
)


def with_background_errors(scenario: Any, error_rate: float, service: str = "users") -> Any:
    """`scenario` with `error_rate` added to every phase where `service` is at its
    baseline: a healthy service is rarely perfect, and that is what makes a low
    failure_threshold costly."""
    from ..faults import Scenario
    from ..sim import resolve_scenario

    plan = resolve_scenario(scenario)
    baseline = plan.phases[0].profile(service)
    data = plan.to_dict()
    for phase, spec in zip(plan.phases, data["phases"], strict=True):
        if phase.profile(service) == baseline:
            faults = spec.setdefault("faults", {})
            faults[service] = {**faults.get(service, {}), "error_rate": error_rate}
    data["name"] = f"{plan.name}-noisy"
    data["description"] = f"{plan.description} With {error_rate:.0%} background errors."
    return Scenario.from_dict(data)


def fault_phases(scenario: Any, service: str = "users") -> list[str]:
    """Phases where `service` behaves differently from the first phase (the baseline)."""
    baseline = scenario.phases[0].profile(service)
    return [p.name for p in scenario.phases if p.profile(service) != baseline]


def fault_window(scenario: Any, service: str = "users") -> tuple[float, float] | None:
    """(start, end) in seconds of the `fault_phases`, or None when there are none."""
    faults = set(fault_phases(scenario, service))
    spans = [(start, start + phase.duration_s)
             for start, phase in zip(scenario.phase_starts, scenario.phases, strict=True)
             if phase.name in faults]
    if not spans:
        return None
    return (min(s for s, _ in spans), max(e for _, e in spans))


def score_run(run: Any, service: str = "users") -> dict[str, float]:
    """The four scores of one `SimRun`. Availability and recovery are
    `cblab.analysis.run_kpis`' (with the faults defined against the baseline phase)."""
    from ..analysis import run_kpis

    plan = run.scenario
    faults = fault_phases(plan, service)
    window = fault_window(plan, service)
    figures = run_kpis(run, service=service, fault_phases=faults)
    columns = run.columns()
    kind, t, outcome, after = (columns[c] for c in ("kind", "t", "outcome", "state_after"))
    trips = [ti for k, ti, a in zip(kind, t, after, strict=True) if k == "state" and a == "open"]
    scores = {"availability": float(figures["availability"])}
    if window is None:
        return {**scores, "false_trips": float(len(trips)), "wasted_per_s": 0.0,
                "recovery_s": 0.0}
    start, end = window
    # A trip is false before the faults begin, or once the service has been healthy
    # again for 10 s (re-trips right after the end still belong to the fault).
    scores["false_trips"] = float(sum(1 for ti in trips if ti < start or ti > end + 10.0))
    failed = sum(1 for k, ti, o in zip(kind, t, outcome, strict=True)
                 if k == "call" and start <= ti < end and o not in _NOT_WASTED)
    scores["wasted_per_s"] = failed / max(end - start, 1e-9)
    recovery = figures["recovery_s"]
    if recovery is None or math.isnan(recovery):  # never closed: count until the run's end
        recovery = plan.total_duration_s - end
    scores["recovery_s"] = float(recovery)
    return scores


_NOT_WASTED = frozenset({"success", "slow", "rejected", "dropped"})


def sweep_grid(
    scenario: Any = "outage-and-recovery",
    *,
    failure_thresholds: Sequence[int] = (1, 2, 3, 5, 8, 13),
    timeouts: Sequence[float] = (1, 2, 5, 10, 20, 30),
    seeds: Iterable[int] = (1, 2, 3),
    time_scales: Sequence[float] = (0.8, 1.0, 1.25),
    base: Mapping[str, Any] | None = None,
    service: str = "users",
    rate: float | None = None,
    quick: bool = False,
) -> pd.DataFrame:
    """Simulate every (failure_threshold, timeout) on `scenario` for each seed and
    each time scale (the scenario stretched or shrunk: a timeout that happens to
    match the outage's length should not look better than it is).

    Returns one row per setting: the scores averaged over the runs (`runs`).
    `quick=True` (headless notebook runs) sweeps a 4 x 3 grid once.
    """
    import pandas as pd

    if quick:
        failure_thresholds, timeouts = (1, 3, 5, 13), (1, 5, 20)
        seeds, time_scales = (1,), (1.0,)

    from ..sim import resolve_scenario, simulate

    plan = resolve_scenario(scenario)
    plans = [plan if scale == 1 else plan.scaled(scale) for scale in time_scales]
    seeds = list(seeds)
    rows = []
    for threshold in failure_thresholds:
        for timeout in timeouts:
            config = {**dict(base or {}), "failure_threshold": int(threshold),
                      "timeout": float(timeout)}
            for scaled in plans:
                for seed in seeds:
                    run = simulate(scaled, config, seed=seed, service=service, rate=rate)
                    rows.append({"failure_threshold": int(threshold), "timeout": float(timeout),
                                 "seed": seed, **score_run(run, service)})
    frame = pd.DataFrame(rows)
    grouped = frame.groupby(["failure_threshold", "timeout"], as_index=False)
    out = grouped[[s.column for s in SCORES]].mean()
    out["runs"] = grouped.size()["size"].to_numpy()
    out.attrs["scenario"] = plan.name
    return out


def heatmaps(
    grid: pd.DataFrame, scores: Sequence[Score] = SCORES, *, pick: Mapping[str, Any] | None = None,
    title: str | None = None,
) -> go.Figure:
    """One heatmap per score (two per row): failure_threshold up, timeout across.

    `grid` is `sweep_grid`'s table, or `cblab.sim.sweep.sweep` output (one row per
    run: values are averaged per cell) with `scores=SWEEP_SCORES`. Green is good
    whichever way a score points; `pick` (default: `best_config` when the table
    has its columns) is outlined.
    """
    from plotly.subplots import make_subplots

    from ..plots.style import apply_layout

    cols = 2
    rows = (len(scores) + cols - 1) // cols
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[s.title for s in scores],
                        horizontal_spacing=0.16, vertical_spacing=0.2)
    thresholds = sorted(grid["failure_threshold"].unique())
    timeouts = sorted(grid["timeout"].unique())
    if pick is None and {s.column for s in SCORES} <= set(grid.columns):
        pick = best_config(grid)
    for i, score in enumerate(scores):
        row, col = divmod(i, cols)
        row, col = row + 1, col + 1
        table = grid.pivot_table(index="failure_threshold", columns="timeout",
                                 values=score.column, aggfunc="mean")
        table = table.reindex(index=thresholds, columns=timeouts)
        scale = "RdYlGn" if score.better == "higher" else "RdYlGn_r"
        sub = fig.get_subplot(row, col)
        fig.add_heatmap(
            z=table.to_numpy(), x=[f"{t:g}" for t in timeouts], y=[str(t) for t in thresholds],
            colorscale=scale, texttemplate="%{z:" + score.fmt + "}", textfont={"size": 11},
            colorbar={"x": sub.xaxis.domain[1] + 0.01, "xanchor": "left",
                      "y": sum(sub.yaxis.domain) / 2, "len": 0.42, "thickness": 10,
                      "tickformat": score.fmt},
            hovertemplate="failure_threshold %{y}, timeout %{x} s<br>"
            + score.column + " %{z:" + score.fmt + "}<extra></extra>",
            row=row, col=col,
        )
        if pick is not None:
            x = timeouts.index(pick["timeout"])
            y = thresholds.index(pick["failure_threshold"])
            fig.add_shape(type="rect", row=row, col=col, x0=x - 0.5, x1=x + 0.5,
                          y0=y - 0.5, y1=y + 0.5, line={"color": "#111827", "width": 3})
        fig.update_xaxes(title_text="timeout (s)", type="category", row=row, col=col)
        fig.update_yaxes(title_text="failure_threshold", type="category", row=row, col=col)
    if title is None:
        scenario = grid.attrs.get("scenario") or ", ".join(
            map(str, dict.fromkeys(grid["scenario"]))) if "scenario" in grid else ""
        title = f"Sweeping the breaker on “{scenario}”" + (" (outlined: the pick)" if pick else "")
    apply_layout(fig, title=title,
                 height=330 * rows + 90, xaxis_title=None)
    fig.update_annotations(font_size=12)
    fig.update_layout(margin={"l": 60, "r": 40, "t": 90, "b": 50})
    return fig


def best_config(grid: pd.DataFrame, *, slack: float = 0.02) -> dict[str, Any]:
    """A balanced pick: among the settings within `slack` of the best availability and
    with the fewest false trips, the one with the least wasted load plus recovery time
    (each scaled by its largest value in the grid)."""
    good = grid[grid["availability"] >= grid["availability"].max() - slack]
    good = good[good["false_trips"] <= good["false_trips"].min() + 0.5]
    waste = good["wasted_per_s"] / max(float(grid["wasted_per_s"].max()), 1e-9)
    slow = good["recovery_s"] / max(float(grid["recovery_s"].max()), 1e-9)
    row = good.assign(_cost=waste + slow).sort_values(
        ["_cost", "failure_threshold", "timeout"], kind="stable").iloc[0]
    return {"failure_threshold": int(row["failure_threshold"]), "timeout": float(row["timeout"])}
