"""Notebook 05's retry comparison: the three callers, their figures, and the sliders."""

from __future__ import annotations

from collections import Counter

from cblab.lab.retry_compare import (
    BREAKER_ONLY,
    BUDGETED,
    NO_BREAKER,
    RetryKnobs,
    compare_agents,
    retry_explorer,
)
from cblab.lab.retry_live import CHECK_CONFIG, CHECK_SCENARIO
from cblab.sim.agents import Agent, simulate_agents


def sent_per_second(rows) -> Counter[int]:
    """Calls that reached the dependency, counted by hand from the simulator's rows."""
    return Counter(int(row[1]) for row in rows if row[0] == "call" and row[3].value != "rejected")


def test_the_chart_shows_each_callers_calls_to_the_dependency() -> None:
    comparison = compare_agents(RetryKnobs(retries=3), seed=2)
    assert list(comparison.kpis) == [NO_BREAKER, BREAKER_ONLY, BUDGETED]
    storm = simulate_agents(CHECK_SCENARIO, Agent.framework(3), CHECK_CONFIG, seed=2,
                            protected=False)
    by_hand = sent_per_second(storm.run.rows)
    figure = comparison.figure()
    sent = next(t for t in figure.data if t.name.startswith("sent") and t.xaxis == "x")
    assert [int(y) for y in sent.y] == [by_hand.get(int(t), 0) for t in sent.x]
    table = comparison.table()
    assert table.loc[NO_BREAKER, "attempts"] == storm.attempts
    # the storm and its stop: retries without a breaker multiply the outage's load,
    # budgeted retries behind the breaker add (almost) nothing to the breaker's own
    loads = table["load_during_fault"]
    assert loads[NO_BREAKER] > 5 * loads[BUDGETED]
    assert loads[BUDGETED] <= 1.1 * loads[BREAKER_ONLY] + 1


def test_sliders_change_the_comparison() -> None:
    box = retry_explorer(RetryKnobs(retries=3), seed=1)
    sliders, figure = box.children[0].children, box.children[1]
    retries = next(w for w in sliders if w.description == "retries")
    before = sum(figure.data[0].y)
    retries.value = 0  # no retries: the storm is gone
    after = sum(figure.data[0].y)
    assert after < before / 2
    plain = simulate_agents(CHECK_SCENARIO, Agent.none(), CHECK_CONFIG, seed=1, protected=False)
    assert after == sum(sent_per_second(plain.run.rows).values())
    assert "agent retries, no breaker" in box.children[2].value  # the table redrew too


def test_the_agents_table_ranks_the_defences() -> None:
    from cblab.analysis.retries import retry_kpis
    from cblab.lab.retry_compare import agents_table

    table = agents_table("outage-and-recovery", retries=3, seed=1)
    assert len(table) == 10
    load = table["load_during_fault"]
    plain = load[("no retries", False)]
    # an immediate re-call, or a framework, multiplies the load on the dead dependency
    assert load[("model re-calls ×3", False)] > 3 * plain
    assert load[("framework 3 retries, no jitter", False)] > 3 * plain
    assert load[("budgeted 3 retries", False)] < 1.2 * plain
    # behind the breaker nobody adds load, but naive retriers waste their calls on refusals
    assert load[("budgeted 3 retries", True)] <= 1.1 * load[("no retries", True)]
    wasted = table["wasted"]
    assert wasted[("model re-calls ×3", True)] > 3 * wasted[("budgeted 3 retries", True)]
    # one row recomputed independently
    run = simulate_agents("outage-and-recovery", Agent.patient(3),
                          {"failure_threshold": 5, "timeout": 10.0}, seed=1)
    again = retry_kpis(run.to_frame(), run.scenario, requests=run.requests)
    assert table.loc[("waits retry_after ×3", True), "wasted"] == again["wasted"]
