"""Notebook 05's retry storm: agents that retry, on virtual time and against the live stack.

    from cblab.lab.retry_compare import RetryKnobs, compare_agents, compare_agents_live
    virtual = compare_agents(RetryKnobs(retries=3, jitter=False, budget=0.1))
    virtual.figure(); virtual.table()
    live = await compare_agents_live(RetryKnobs())      # the same three, for real
    retry_explorer()                                     # sliders: retries, jitter, budget

Three callers side by side, on `CHECK_SCENARIO` (a 6 s outage) by default:

- **agent retries, no breaker**: a framework re-issues every failed call `retries`
  times (exponential backoff; `jitter` on or off), straight at the dependency;
- **breaker only**: no retries; the server's breaker sheds the load;
- **breaker + budgeted retries**: cblab's rules (full jitter, a `budget` of retries
  per call, no retry once two calls in a row failed, a refusal never retried) behind
  the breaker.

Figures: `cblab.analysis.retries` (`retry_kpis`, `load_timeline`); nothing here
computes a figure of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cblab.analysis.retries import load_timeline, retry_kpis
from cblab.faults.scenario import Scenario
from cblab.sim.agents import Agent, simulate_agents
from cblab.sim.workload import resolve_scenario

from .retry_live import CHECK_CONFIG, CHECK_SCENARIO, run_agents_live

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = ["AgentComparison", "RetryKnobs", "agents_table", "compare_agents",
           "compare_agents_live", "retry_explorer"]

NO_BREAKER = "agent retries, no breaker"
BREAKER_ONLY = "breaker only"
BUDGETED = "breaker + budgeted retries"


@dataclass(frozen=True)
class RetryKnobs:
    """The sliders: retries per call, jitter for the agents' framework, the retry budget."""

    retries: int = 3
    jitter: bool = False
    budget: float = 0.1

    def callers(self) -> list[tuple[str, Agent, bool]]:
        """(label, agent, behind the breaker) for the three callers."""
        return [
            (NO_BREAKER, Agent.framework(self.retries, jitter=self.jitter), False),
            (BREAKER_ONLY, Agent.none(), True),
            (BUDGETED, Agent.budgeted(self.retries, budget_ratio=self.budget), True),
        ]


@dataclass(eq=False)
class AgentComparison:
    """The three callers' event rows (one frame, by variant), their KPIs and the scenario."""

    source: str  # "virtual" or "live"
    scenario: Scenario
    events: pd.DataFrame
    kpis: dict[str, dict[str, Any]]

    def table(self) -> pd.DataFrame:
        """Load on the dependency during the outage, recovery and wasted calls, by caller."""
        import pandas as pd

        frame = pd.DataFrame.from_dict(self.kpis, orient="index")
        frame.index.name = f"{self.source} caller"
        return frame[["requests", "attempts", "load_during_fault", "recovery_s", "wasted",
                      "success_rate"]]

    def figure(self) -> go.Figure:
        """Side by side: calls reaching the dependency, and refused, per second."""
        from plotly.subplots import make_subplots

        from ..plots.style import apply_layout

        timeline = load_timeline(self.events, duration=self.scenario.total_duration_s)
        names = list(self.kpis)
        fig = make_subplots(rows=1, cols=len(names), shared_yaxes=True, subplot_titles=names,
                            horizontal_spacing=0.04)
        for col, name in enumerate(names, start=1):
            part = timeline[timeline["variant"] == name]
            for column, colour in (("sent", "#d64545"), ("refused", "#8a8a8a")):
                fig.add_bar(x=part["t"], y=part[column], name=f"{column} (calls/s)",
                            marker_color=colour, legendgroup=column, showlegend=col == 1,
                            row=1, col=col)
            for start, phase in zip(self.scenario.phase_starts, self.scenario.phases,
                                    strict=True):
                if phase.profile("users").mode == "down":
                    fig.add_vrect(x0=start, x1=start + phase.duration_s, line_width=0,
                                  fillcolor="rgba(214, 69, 69, 0.08)", row=1, col=col)
        fig.update_layout(barmode="stack")
        apply_layout(fig, height=380, xaxis_title=None,
                     title=f"Calls reaching the dependency ({self.source}; shaded: it is down)")
        fig.update_xaxes(title_text="time (s)")
        return fig


def _comparison(source: str, scenario: Scenario, runs: list[tuple[str, Any, int]],
                ) -> AgentComparison:
    import pandas as pd

    from cblab.analysis import events_frame

    frames, kpis = [], {}
    for name, events, requests in runs:
        frame = events if isinstance(events, pd.DataFrame) else events_frame(events)
        frame = frame.assign(variant=name)
        frames.append(frame)
        kpis[name] = retry_kpis(frame, scenario, requests=requests)
    return AgentComparison(source, scenario, pd.concat(frames, ignore_index=True), kpis)


def compare_agents(knobs: RetryKnobs = RetryKnobs(), *, scenario: Any = None,
                   config: dict[str, Any] | None = None, seed: int = 1,
                   round_trip_s: float = 0.0) -> AgentComparison:
    """The three callers on virtual time (milliseconds per run)."""
    scenario = resolve_scenario(scenario if scenario is not None else CHECK_SCENARIO)
    config = config if config is not None else CHECK_CONFIG
    runs = []
    for name, agent, breaker in knobs.callers():
        run = simulate_agents(scenario, agent, config, seed=seed, protected=breaker,
                              round_trip_s=round_trip_s)
        runs.append((name, run.to_frame(), run.requests))
    return _comparison("virtual", scenario, runs)


async def compare_agents_live(knobs: RetryKnobs = RetryKnobs(), *, seed: int = 1,
                              scenario: Any = None, stack: Any = None) -> AgentComparison:
    """The three callers against the live stack (a backend and two demo servers, started
    here unless `stack` is given): about 20 s per caller on `CHECK_SCENARIO`."""
    scenario = resolve_scenario(scenario if scenario is not None else CHECK_SCENARIO)
    if stack is None:
        from cblab.stack import Stack

        async with Stack(("protected", "unprotected"), seed=seed, github=CHECK_CONFIG,
                         deadline=2.0) as started:
            return await compare_agents_live(knobs, seed=seed, scenario=scenario,
                                             stack=started)
    runs = []
    for name, agent, breaker in knobs.callers():
        live = await run_agents_live(stack, "protected" if breaker else "unprotected",
                                     scenario, agent, seed=seed, label=name)
        runs.append((name, live.events, live.requests))
    return _comparison("live", scenario, runs)


def agents_table(scenario: Any = "outage-and-recovery", *, retries: int = 3,
                 config: dict[str, Any] | None = None, seed: int = 1) -> pd.DataFrame:
    """Every agent behaviour, with and without the breaker, on one scenario: the load on
    the dependency during the fault, recovery and wasted calls (virtual time)."""
    import pandas as pd

    scenario = resolve_scenario(scenario)
    config = config if config is not None else {"failure_threshold": 5, "timeout": 10.0}
    agents = [Agent.none(), Agent.model(retries), Agent.framework(retries),
              Agent.budgeted(retries), Agent.patient(retries)]
    rows = []
    for agent in agents:
        for breaker in (False, True):
            run = simulate_agents(scenario, agent, config, seed=seed, protected=breaker)
            kpis = retry_kpis(run.to_frame(), scenario, requests=run.requests)
            rows.append({"agent": agent.label, "breaker": breaker, **kpis})
    frame = pd.DataFrame(rows).set_index(["agent", "breaker"])
    return frame[["load_during_fault", "attempts_per_request", "recovery_s", "wasted",
                  "success_rate"]]


def retry_explorer(knobs: RetryKnobs = RetryKnobs(), *, seed: int = 1) -> Any:
    """Sliders for retries, jitter and budget over the virtual-time comparison; the chart
    and the table redraw when a slider moves."""
    import ipywidgets as W

    from .whole_widget import WholeFigureWidget

    retries = W.IntSlider(value=knobs.retries, min=0, max=8, description="retries",
                          continuous_update=False)
    jitter = W.Checkbox(value=knobs.jitter, description="framework jitter")
    budget = W.FloatSlider(value=knobs.budget, min=0.0, max=1.0, step=0.05,
                           description="budget", continuous_update=False)
    first = compare_agents(knobs, seed=seed)
    figure = WholeFigureWidget(first.figure())  # opened whole: see cblab.lab.whole_widget
    # an HTML widget, not an Output widget: headless runners (nbclient) mishandle those
    table = W.HTML(first.table().to_html(float_format="{:.3g}".format))

    def redraw(_: Any = None) -> None:
        now = compare_agents(RetryKnobs(retries.value, jitter.value, budget.value), seed=seed)
        fresh = now.figure()
        with figure.batch_update():
            for trace, new in zip(figure.data, fresh.data, strict=True):
                trace.x, trace.y = new.x, new.y
        table.value = now.table().to_html(float_format="{:.3g}".format)

    for widget in (retries, jitter, budget):
        widget.observe(redraw, names="value")
    return W.VBox([W.HBox([retries, jitter, budget]), figure, table])
