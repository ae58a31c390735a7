"""Notebook 04: sweep `failure_threshold` x `timeout` in the simulator, draw heatmaps.

`sweep_grid` plays a scenario on virtual time for every pair of settings (and
several seeds) and scores each run:

- availability: the share of callers' requests that succeeded;
- wasted load: `cblab.analysis`' `wasted` (calls sent into a failing backend: the
  load a breaker exists to shed), per second of fault;
- recovery: seconds from the end of the faults until the breaker is closed again
  (0 when it was closed already).

- false trips: trips while the service was healthy (`with_background_errors`
  gives the healthy phases the small error rate real services have).

`heatmaps` draws one heatmap per score, with a 95 % confidence interval over the
runs (seeds, time scales) on each cell's hover; `best_config` makes a balanced pick.

Several scenarios at once (a `cblab.sim.sweep.sweep` table): `scenario_picks`
puts each scenario's own best setting next to the *robust* pick
(`robust_config`: the setting whose worst scenario is best), and `worst_case`
gives the per-setting worst scenario as a table `heatmaps` can draw.

`live_check` plays a scenario against the real stack with a setting: its chart
keeps the whole scenario in view, shades the fault phases, and the run ends
(saying so) when the scenario does.
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
    "compare_with_simulation",
    "fault_phases",
    "fault_window",
    "heatmaps",
    "live_check",
    "robust_config",
    "scenario_picks",
    "score_run",
    "shade_faults",
    "sweep_grid",
    "with_background_errors",
    "worst_case",
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
    """`cblab.analysis.fault_phase_names`: phases where `service` is down or hangs, or
    differs from its baseline (its least failing phase)."""
    from ..analysis import fault_phase_names

    return fault_phase_names(scenario, service)


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
    """The four scores of one `SimRun`, from `cblab.analysis` figures (the fault phases
    are `fault_phase_names`: background errors are no fault):

    availability   `availability`
    false_trips    `cblab.analysis.false_trips`: trips while the service was healthy
                   (the 10 s after a fault still belong to it)
    wasted_per_s   `wasted` per second of fault
    recovery_s     `recovery_s`; a breaker still not CLOSED at the end counts until
                   the end (a lower bound, so the cell is never blank)
    """
    from ..analysis import false_trips, run_kpis

    plan = run.scenario
    faults = fault_phases(plan, service)
    window = fault_window(plan, service)
    figures = run_kpis(run, service=service, fault_phases=faults)
    scores = {"availability": float(figures["availability"]),
              "false_trips": float(false_trips(run, service=service, fault_phases=faults))}
    if window is None:
        return {**scores, "wasted_per_s": 0.0, "recovery_s": 0.0}
    _, end = window
    fault_s = sum(phase.duration_s for phase in plan.phases if phase.name in set(faults))
    scores["wasted_per_s"] = float(figures["wasted"]) / max(fault_s, 1e-9)
    recovery = figures["recovery_s"]
    if recovery is None or math.isnan(recovery):  # never closed: count until the run's end
        recovery = plan.total_duration_s - end
    scores["recovery_s"] = float(recovery)
    return scores


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
    columns = [s.column for s in SCORES]
    out = _cells(frame, columns)
    out.attrs["scenario"] = plan.name
    return out


# Student's t, two-sided 95 %, by degrees of freedom (1.96 beyond the table).
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def _cells(frame: pd.DataFrame, columns: Sequence[str],
           keys: Sequence[str] = ("failure_threshold", "timeout")) -> pd.DataFrame:
    """Mean per setting, plus `<column>_ci` (half-width of a 95 % confidence interval
    for the mean over the runs; NaN with one run) and `runs`."""
    grouped = frame.groupby(list(keys), as_index=False, sort=True)
    out = grouped[list(columns)].mean()
    runs = grouped.size()["size"].to_numpy()
    spread = grouped[list(columns)].std(ddof=1)
    for column in columns:
        t = [(_T95[n - 2] if n - 2 < len(_T95) else 1.96) if n > 1 else math.nan for n in runs]
        out[f"{column}_ci"] = spread[column].to_numpy() / [math.sqrt(n) for n in runs] * t
    out["runs"] = runs
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
    keys = ["failure_threshold", "timeout"]
    wanted = [s.column for s in scores]
    # one row per run (a sweep table): average per cell, with a confidence interval;
    # tables already per setting (sweep_grid, worst_case) carry their own `runs`
    cells = grid if "runs" in grid else _cells(
        grid, [*wanted, *(c for c in _WHY_COLUMNS if c in grid and c not in wanted)], keys)
    for i, score in enumerate(scores):
        row, col = divmod(i, cols)
        row, col = row + 1, col + 1

        def layout(column: str, cells: pd.DataFrame = cells) -> Any:
            table = cells.pivot_table(index="failure_threshold", columns="timeout",
                                      values=column, aggfunc="mean", dropna=False)
            return table.reindex(index=thresholds, columns=timeouts).to_numpy()

        z = layout(score.column)
        ci = layout(f"{score.column}_ci") if f"{score.column}_ci" in cells else z * math.nan
        runs = layout("runs") if "runs" in cells else z * math.nan
        text = _cell_texts(z, score, {k: layout(k) for k in _WHY_COLUMNS if k in cells})
        scale = "RdYlGn" if score.better == "higher" else "RdYlGn_r"
        sub = fig.get_subplot(row, col)
        fig.add_heatmap(
            z=z, x=[f"{t:g}" for t in timeouts], y=[str(t) for t in thresholds],
            customdata=[[_interval(m, h, n, score.fmt) for m, h, n in zip(*cells_row, strict=True)]
                        for cells_row in zip(z, ci, runs, strict=True)],
            text=text, colorscale=scale, texttemplate="%{text}", textfont={"size": 11},
            colorbar={"x": sub.xaxis.domain[1] + 0.01, "xanchor": "left",
                      "y": sum(sub.yaxis.domain) / 2, "len": 0.42, "thickness": 10,
                      "tickformat": score.fmt},
            hovertemplate="failure_threshold %{y}, timeout %{x} s<br>"
            + score.column + " %{text}<br>%{customdata}<extra></extra>",
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
        title = f"Sweeping the breaker on {_scenario_label(grid)}" + (
            " (outlined: the pick)" if pick else "")
    apply_layout(fig, title=title,
                 height=330 * rows + 90, xaxis_title=None)
    fig.update_annotations(font_size=12)
    fig.update_layout(margin={"l": 60, "r": 40, "t": 90, "b": 50})
    return fig


#: The figures that say why a cell's detection or recovery is missing.
_WHY_COLUMNS = ("fault_episodes", "trips", "probe_failures", "time_open_s", "time_half_open_s")
_SHORT_WHY = {"no fault phase in this run": "no fault", "the breaker never opened": "never opened",
              "the breaker never opened during a fault": "never opened"}


def _cell_texts(z: Any, score: Score, why: Mapping[str, Any]) -> list[list[str]]:
    """Each cell's text: its value, or a word for why it is blank (`cblab.analysis.
    missing_reasons` on the cell's averages: "never opened", "never closed"...)."""
    from ..analysis import missing_reasons

    texts = []
    for i, row in enumerate(z):
        line = []
        for j, value in enumerate(row):
            if not math.isnan(value):
                line.append(format(value, score.fmt))
                continue
            figures = {k: float(v[i][j]) for k, v in why.items()}
            figures[score.column] = math.nan
            reason = missing_reasons(figures).get(score.column) if why else None
            line.append(_SHORT_WHY.get(reason or "", "never closed" if reason else "n/a"))
        texts.append(line)
    return texts


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


def _interval(mean: float, half: float, runs: float, fmt: str) -> str:
    """A cell's hover line: its 95 % confidence interval over the runs, when there is one."""
    if math.isnan(mean):
        return "no runs"
    if math.isnan(runs):
        return ""
    if runs < 2 or math.isnan(half):
        return f"{runs:.0f} run: no confidence interval"
    return (f"95% CI {mean - half:{fmt}} to {mean + half:{fmt}} "
            f"(mean of {runs:.0f} runs)")


def _scenario_label(grid: pd.DataFrame) -> str:
    """“name”, or “a”, “b” for a table over several scenarios (never empty quotes)."""
    names = grid.attrs.get("scenario")
    if not names and "scenario" in grid:
        names = list(dict.fromkeys(map(str, grid["scenario"])))
    if not names:
        sweep_meta = grid.attrs.get("sweep") or {}
        names = list(sweep_meta.get("scenarios") or [])
    if isinstance(names, str):
        names = [names]
    if not names:
        return "the simulator"
    listed = ", ".join(f"“{name}”" for name in names)
    return f"the worst of {listed}" if grid.attrs.get("worst_of") else listed


# --- several scenarios: per-scenario picks and the robust pick -----------------------------

_SETTING = ["failure_threshold", "timeout"]


def _score(score: str | Score) -> Score:
    if isinstance(score, Score):
        return score
    for known in (*SWEEP_SCORES, *SCORES):
        if known.column == score:
            return known
    raise ValueError(f"unknown score {score!r}; scores: "
                     f"{', '.join(dict.fromkeys(s.column for s in (*SWEEP_SCORES, *SCORES)))}")


def _per_scenario(table: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    if "scenario" not in table:
        raise ValueError("the table has no `scenario` column: pass a cblab.sim.sweep.sweep table")
    missing = [c for c in (*_SETTING, *columns) if c not in table]
    if missing:
        raise ValueError(f"the table has no column(s) {', '.join(missing)}")
    return table.groupby([*_SETTING, "scenario"], as_index=False, sort=True)[list(columns)].mean()


def worst_case(table: pd.DataFrame, scores: Sequence[Score] = SWEEP_SCORES) -> pd.DataFrame:
    """Per setting, each score in its worst scenario (means over seeds first): a table
    `heatmaps` can draw. A "higher is better" score takes the minimum, the others the max."""
    columns = [s.column for s in scores]
    means = _per_scenario(table, columns)
    grouped = means.groupby(_SETTING, as_index=False, sort=True)
    out = grouped[columns].min()
    for s in scores:
        if s.better != "higher":
            out[s.column] = grouped[s.column].max()[s.column].to_numpy()
    out["runs"] = math.nan  # a worst case over scenarios: no interval to give
    out.attrs["scenario"] = list(dict.fromkeys(map(str, table["scenario"])))
    out.attrs["worst_of"] = True
    return out


def _rank(frame: pd.DataFrame, score: Score) -> pd.DataFrame:
    """Best first: by the score, then fewer wasted calls and faster recovery when the
    table has them, then the smaller setting (a stable, explainable tie-break)."""
    by, ascending = [score.column], [score.better != "higher"]
    for column in ("wasted_share", "recovery_s"):
        if column in frame and column != score.column:
            by.append(column)
            ascending.append(True)
    return frame.sort_values([*by, *_SETTING], ascending=[*ascending, True, True], kind="stable")


def robust_config(table: pd.DataFrame, score: str | Score = "availability") -> dict[str, Any]:
    """The setting whose *worst* scenario is best (maximin for a score where higher is
    better, minimax otherwise), from a sweep over several scenarios."""
    chosen = _score(score)
    scores = [chosen, *(s for s in SWEEP_SCORES if s.column in table and s != chosen)]
    row = _rank(worst_case(table, scores), chosen).iloc[0]
    return {"failure_threshold": int(row["failure_threshold"]), "timeout": float(row["timeout"])}


def scenario_picks(table: pd.DataFrame, score: str | Score = "availability") -> pd.DataFrame:
    """One row per scenario: its own best setting and score, and what the robust pick
    (`robust_config`) scores there; a last row, "worst case", compares the two over
    all scenarios. Means over seeds."""
    import pandas as pd

    chosen = _score(score)
    extra = [c for c in ("wasted_share", "recovery_s") if c in table and c != chosen.column]
    means = _per_scenario(table, [chosen.column, *extra])
    robust = robust_config(table, chosen)
    at_robust = means[(means["failure_threshold"] == robust["failure_threshold"])
                      & (means["timeout"] == robust["timeout"])].set_index("scenario")
    rows: list[dict[str, Any]] = []
    best_values: list[float] = []
    robust_values: list[float] = []
    worst = min if chosen.better == "higher" else max
    for name in dict.fromkeys(map(str, table["scenario"])):
        best = _rank(means[means["scenario"] == name], chosen).iloc[0]
        best_values.append(float(best[chosen.column]))
        robust_values.append(float(at_robust.loc[name, chosen.column]))
        rows.append({
            "scenario": name,
            "its best setting": f"threshold {int(best['failure_threshold'])}, "
                                f"timeout {best['timeout']:g} s",
            f"its best {chosen.column}": best_values[-1],
            f"robust pick's {chosen.column}": robust_values[-1],
        })
    rows.append({
        "scenario": "worst case",
        "its best setting": "-",
        f"its best {chosen.column}": worst(best_values),
        f"robust pick's {chosen.column}": worst(robust_values),
    })
    out = pd.DataFrame(rows).set_index("scenario")
    out.attrs["robust"] = robust
    return out


# --- the live check ------------------------------------------------------------------------


def shade_faults(fig: go.Figure, scenario: Any, service: str = "users") -> go.Figure:
    """Shade each fault phase of `scenario` (phases where `service` differs from the
    first phase) across every row of a time-axis figure, labelled with its name."""
    faults = set(fault_phases(scenario, service))
    for start, phase in zip(scenario.phase_starts, scenario.phases, strict=True):
        if phase.name in faults:
            before = len(fig.layout.shapes)
            fig.add_vrect(x0=start, x1=start + phase.duration_s, row="all", col=1,
                          fillcolor="#f59e0b", opacity=0.14, layer="below", line_width=0,
                          name=f"fault: {phase.name}")
            # the phase's name once, on the top row's band
            fig.layout.shapes[before].label = {
                "text": phase.name, "textposition": "top left",
                "font": {"size": 11, "color": "#92400e"}}
    return fig


def live_check(params: Any, config: Mapping[str, Any], scenario: Any, *,
               service: str = "users", title: str | None = None, **options: Any) -> Any:
    """A `LiveLab` that plays `scenario` against the real stack with `config`.

    Its chart keeps the whole scenario in view (the window is at least the scenario's
    length, so the outage's start never scrolls away) with the fault phases shaded,
    and the run ends by itself when the scenario does: then `lab.finished` is True
    and the status says the scenario has ended. A bounded run (`CBLAB_RUN_SECONDS`)
    squeezes the scenario into it, as `LiveLab` does.
    """
    from dataclasses import replace

    from ..sim import resolve_scenario
    from .live import LiveLab

    plan = resolve_scenario(scenario)
    length = plan.total_duration_s
    if not params.run_seconds:
        params = replace(params, run_seconds=length + 2.0)
    params = replace(params, window_s=max(params.window_s,
                                          min(params.run_seconds, length) + 5.0))
    if title is None:
        shown = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                          for k, v in config.items())
        title = f"Live check of {shown} on “{plan.name}”"
    return LiveLab(params, config=config, scenario=plan, service=service, title=title,
                   **options)


def compare_with_simulation(lab: Any, config: Mapping[str, Any], *, seed: int = 1,
                            rows: Sequence[str] = ("availability", "share_failed_fast",
                                                   "trips", "recovery_s")) -> Any:
    """A finished live check (`live_check`) next to the simulator's prediction for the
    same scenario and `config`, as a table for reading. A run stopped before its
    scenario ended is compared with the simulation cut at the same moment, and the
    table's caption says so: a 46 s run against a 90 s simulation compares nothing."""
    from ..analysis import compare
    from ..sim import simulate
    from .tables import show_table

    live = lab.events("server")
    predicted = simulate(lab.scenario, config, seed=seed).to_frame()
    length = float(lab.scenario.total_duration_s)
    ended = float(live["t"].max()) if len(live) else 0.0
    caption = f"The whole {length:g} s scenario, simulated and live."
    if lab.session.phase == "stopped" and ended < length - 1.0:
        predicted = predicted[predicted["t"] <= ended].reset_index(drop=True)
        caption = (f"The live run was stopped at {ended:.0f} s of the {length:g} s scenario: "
                   f"the simulation is cut there too, so both columns cover the same "
                   f"{ended:.0f} s.")
    table = compare(predicted, live, lab.scenario, labels=("simulated", "live"))
    return show_table(table.loc[list(rows)]).set_caption(caption)
