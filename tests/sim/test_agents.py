"""Retrying agents in the simulator, against closed forms and their own rules."""

from __future__ import annotations

import itertools
import math

import pytest

from cblab.analysis.retries import fault_load_parts, retry_kpis
from cblab.sim import single_phase
from cblab.sim.agents import Agent, simulate_agents

FAST_OK = {"latency": {"kind": "constant", "ms": 1}}


def failing_at(p: float, *, duration_s: float = 200.0, rate: float = 25.0):
    return single_phase({**FAST_OK, "error_rate": p}, duration_s=duration_s, rate_per_s=rate)


@pytest.mark.parametrize(("p", "k"), [(0.5, 3), (0.3, 2), (0.8, 4), (1.0, 3)])
def test_offered_load_under_k_immediate_retries_is_the_geometric_sum(p: float, k: int) -> None:
    # Each attempt fails independently with probability p; a request makes attempt i+1
    # only if its first i+1 all failed: E[attempts] = sum_{i=0..k} p^i.
    run = simulate_agents(failing_at(p), Agent.model(k), seed=3, protected=False)
    expected = sum(p ** i for i in range(k + 1))
    per_request = run.attempts / run.requests
    # attempts per request has variance below k^2/4; n ~ 5,000: 4 standard errors
    assert abs(per_request - expected) < 4 * (k / 2) / math.sqrt(run.requests), (
        per_request, expected)
    # and the success rate is 1 - p^(k+1)
    assert abs(run.succeeded / run.requests - (1 - p ** (k + 1))) < 0.02


def test_without_retries_every_request_is_one_attempt() -> None:
    run = simulate_agents(failing_at(0.5, duration_s=50), Agent.none(), seed=1, protected=False)
    assert run.attempts == run.requests and run.gave_up == run.requests - run.succeeded


def one_request_on_a_dead_service():
    # constant arrivals at 0.05/s over 20 s: exactly one request, at t = 0
    return single_phase({"mode": "down"}, duration_s=20, rate_per_s=0.05, arrivals="constant")


def attempt_times(run) -> list[float]:
    return [row[1] for row in run.run.rows if row[0] == "call"]


def test_framework_retries_follow_the_fixed_exponential_schedule() -> None:
    run = simulate_agents(one_request_on_a_dead_service(), Agent.framework(3, backoff=0.1),
                          seed=1, protected=False)
    times = attempt_times(run)
    fail = 0.0005  # a refused connection's answer time (FAST_FAIL_S)
    expected = [0.0]
    for n in range(3):
        expected.append(expected[-1] + fail + 0.1 * 2 ** n)
    assert times == pytest.approx(expected)


def test_budgeted_retries_use_full_jitter_and_stop_at_a_refusal() -> None:
    run = simulate_agents(one_request_on_a_dead_service(), Agent.budgeted(3, backoff=1.0),
                          {"failure_threshold": 10, "timeout": 30}, seed=2)
    times = attempt_times(run)
    gaps = [b - a - 0.0005 for a, b in itertools.pairwise(times)]
    assert len(times) == 4
    assert all(0 <= g <= 1.0 * 2 ** n for n, g in enumerate(gaps))
    tripped = simulate_agents(one_request_on_a_dead_service(), Agent.budgeted(5),
                              {"failure_threshold": 2, "timeout": 30}, seed=2)
    # the second failure opened it; the next attempt is refused, and that ends it
    outcomes = [row[3].value for row in tripped.run.rows if row[0] == "call"]
    assert outcomes == ["failure", "failure", "rejected"]


def test_the_budget_bounds_retries_by_requests() -> None:
    agent = Agent.budgeted(3, budget_ratio=0.1, budget_burst=5, max_streak=None)
    run = simulate_agents(failing_at(1.0, duration_s=100), agent, seed=4, protected=False)
    retries = run.attempts - run.requests
    assert 0.1 * run.requests - 1 <= retries <= 5 + 0.1 * run.requests


def test_a_budgeted_retry_is_dropped_if_calls_failed_while_it_waited() -> None:
    # two requests 0.5 s apart on a dead service; the first one's retry waits up to 1 s:
    # it goes only if it is sent before the second request has failed
    scenario = single_phase({"mode": "down"}, duration_s=1.0, rate_per_s=2.0,
                            arrivals="constant")
    agent = Agent.budgeted(1, backoff=1.0)
    sent = dropped = 0
    for seed in range(40):
        run = simulate_agents(scenario, agent, seed=seed, protected=False)
        times = attempt_times(run)
        assert run.requests == 2
        retry_times = [t for t in times if t not in (0.0, 0.5)]
        assert all(t < 0.5 + 0.0005 for t in retry_times), times  # never after the 2nd failed
        sent += len(retry_times)
        dropped += not retry_times
    assert sent > 5 and dropped > 5  # the uniform wait fell on both sides of 0.5 s


def test_budgeted_agents_stop_retrying_once_calls_fail_in_a_row() -> None:
    # every call fails: at most the first request retries (its own failures are one call
    # in the streak); from the second failure on, no retry goes (tokens alone: 10 %)
    run = simulate_agents(failing_at(1.0, duration_s=100), Agent.budgeted(3, max_streak=2),
                          seed=4, protected=False)
    assert run.attempts - run.requests <= 3
    tokens = simulate_agents(failing_at(1.0, duration_s=100),
                             Agent.budgeted(3, max_streak=None), seed=4, protected=False)
    assert tokens.attempts - tokens.requests >= 0.1 * tokens.requests - 1
    # a blip (independent failures at 10 %) is still retried: nearly every request succeeds
    blip = simulate_agents(failing_at(0.1, duration_s=100), Agent.budgeted(3), seed=4,
                           protected=False)
    assert blip.succeeded / blip.requests > 0.98


def test_a_refusal_is_retried_only_by_agents_that_ignore_it() -> None:
    config = {"failure_threshold": 1, "timeout": 10}
    scenario = one_request_on_a_dead_service()
    model = simulate_agents(scenario, Agent.model(3), config, seed=1)
    outcomes = [row[3].value for row in model.run.rows if row[0] == "call"]
    assert outcomes == ["failure", "rejected", "rejected", "rejected"]  # burned on refusals
    budgeted = simulate_agents(scenario, Agent.budgeted(3), config, seed=1)
    assert budgeted.attempts == 2  # its retry met the open breaker: not retried again


def test_the_patient_agent_waits_the_refusals_retry_after() -> None:
    config = {"failure_threshold": 1, "timeout": 5}
    run = simulate_agents(one_request_on_a_dead_service(), Agent.patient(3), config, seed=1)
    times = attempt_times(run)
    outcomes = [row[3].value for row in run.run.rows if row[0] == "call"]
    # fail (opens at 0.0005), re-call at once: refused with retry_after 5; at 5.0005 the
    # half-open trial fails and reopens; the next re-call is refused again
    assert outcomes == ["failure", "rejected", "failure", "rejected"]
    assert times[2] == pytest.approx(times[1] + 5.0)


def test_on_the_shipped_outage_budgeted_retries_and_a_breaker_add_no_storm() -> None:
    config = {"failure_threshold": 5, "timeout": 10}
    runs = {name: simulate_agents("outage-and-recovery", agent, config, seed=1, protected=p)
            for name, agent, p in [("none", Agent.none(), True),
                                   ("naive", Agent.framework(3), False),
                                   ("budgeted", Agent.budgeted(3), True),
                                   ("plain", Agent.none(), False)]}
    figures = {name: retry_kpis(run.to_frame(), run.scenario, requests=run.requests)
               for name, run in runs.items()}
    # the storm: naive retries without a breaker multiply the load on a dead dependency
    assert figures["naive"]["load_during_fault"] > 3 * figures["plain"]["load_during_fault"]
    assert (figures["budgeted"]["load_during_fault"]
            <= 1.1 * figures["none"]["load_during_fault"])
    runs["budgeted alone"] = simulate_agents("outage-and-recovery", Agent.budgeted(3), config,
                                             seed=1, protected=False)
    alone = retry_kpis(runs["budgeted alone"].to_frame(), "outage-and-recovery",
                       requests=runs["budgeted alone"].requests)
    # without a breaker the streak is the defence: calls failing in a row are not retried
    assert alone["load_during_fault"] <= 1.1 * figures["plain"]["load_during_fault"]
    assert figures["budgeted"]["recovery_s"] <= figures["none"]["recovery_s"] + 1e-9


def test_retry_kpis_by_hand() -> None:
    rows = [  # t, outcome: the outage is [30, 60) in outage-and-recovery
        (10.0, "success"), (31.0, "failure"), (31.5, "failure"), (40.0, "rejected"),
        (59.0, "failure"), (60.5, "rejected"), (61.0, "success"), (62.0, "success")]
    events = [{"seq": i + 1, "kind": "call", "t": t, "source": "sim", "variant": "v",
               "breaker": "github", "tool": "github_user", "outcome": o, "latency": 0.0,
               "state": "closed", "state_after": "closed",
               "error_type": None} for i, (t, o) in enumerate(rows)]
    k = retry_kpis(events, "outage-and-recovery", requests=4)
    assert k["attempts"] == 8 and k["sent"] == 6 and k["load_during_fault"] == 3
    assert k["fault_load_per_s"] == pytest.approx(3 / 30)
    assert k["succeeded"] == 3 and k["wasted"] == 5 and k["success_rate"] == 0.75
    assert k["recovery_s"] == pytest.approx(1.0) and k["attempts_per_request"] == 2.0


def test_a_call_counts_toward_the_fault_load_if_its_span_meets_the_outage() -> None:
    rows = [  # t, latency, outcome: the outage is [30, 60)
        (29.7, 0.29, "failure"),   # admitted before, ended before: not counted
        (29.8, 0.30, "failure"),   # a lagging server sent it into the outage: counted
        (29.99, 0.05, "failure"),  # in flight when the dependency fell: counted
        (29.9, 0.40, "rejected"),  # refused: never sent
        (59.99, 0.02, "success"),  # admitted inside: counted
        (60.0, 0.01, "success")]   # admitted after the end: not counted
    events = [{"seq": i + 1, "kind": "call", "t": t, "source": "server", "variant": "v",
               "breaker": "github", "tool": "github_user", "outcome": o, "latency": lat,
               "state": "closed", "state_after": "closed", "error_type": None}
              for i, (t, lat, o) in enumerate(rows)]
    assert retry_kpis(events, "outage-and-recovery", requests=6)["load_during_fault"] == 3


def test_fault_load_parts_by_hand() -> None:
    rows = [  # t, outcome, state at admission: the outage is [30, 60)
        (29.9, "failure", "closed"), (30.1, "failure", "closed"), (30.2, "late", "closed"),
        (30.3, "rejected", "open"), (40.0, "failure", "half_open"),
        (50.0, "rejected", "half_open"), (60.1, "success", "half_open")]
    events = [{"seq": i + 1, "kind": "call", "t": t, "source": "sim", "variant": "v",
               "breaker": "github", "tool": "github_user", "outcome": o, "latency": 0.0,
               "state": st, "state_after": "open", "error_type": None}
              for i, (t, o, st) in enumerate(rows)]
    parts = fault_load_parts(events, "outage-and-recovery", retry_times=[29.0, 30.15, 59.9, 60])
    assert parts == {"probes": 1, "late": 1, "retries": 2}


@pytest.mark.parametrize("bad", [{"kind": "storm"}, {"retries": -1}, {"think_s": math.nan},
                                 {"budget_ratio": -0.1}, {"max_streak": 1}])
def test_bad_agents_are_refused_naming_the_field(bad) -> None:
    with pytest.raises(ValueError, match=next(iter(bad)).split("_")[0]):
        Agent(**{"kind": "model", **bad})


def test_a_round_trip_delays_each_retry_by_that_much() -> None:
    run = simulate_agents(one_request_on_a_dead_service(), Agent.framework(2, backoff=0.1),
                          seed=1, protected=False, round_trip_s=0.25)
    fail = 0.0005
    assert attempt_times(run) == pytest.approx([0.0, fail + 0.1 + 0.25,
                                                2 * fail + 0.3 + 0.5])


def test_framework_jitter_draws_below_the_fixed_schedule() -> None:
    run = simulate_agents(one_request_on_a_dead_service(),
                          Agent.framework(3, backoff=1.0, jitter=True), seed=5, protected=False)
    times = attempt_times(run)
    gaps = [b - a - 0.0005 for a, b in itertools.pairwise(times)]
    assert len(gaps) == 3 and all(0 <= g <= 2 ** n for n, g in enumerate(gaps))
    assert gaps != [1.0, 2.0, 4.0]


def test_load_timeline_by_hand() -> None:
    from cblab.analysis.retries import load_timeline

    rows = [(0.2, "a", "success"), (0.7, "a", "failure"), (1.5, "a", "rejected"),
            (1.6, "b", "failure"), (3.9, "a", "success"), (-0.5, "a", "success")]
    events = [{"seq": i + 1, "kind": "call", "t": t, "source": "sim", "variant": v,
               "breaker": "github", "tool": "github_user", "outcome": o, "latency": 0.0,
               "state": "closed", "state_after": "closed", "error_type": None}
              for i, (t, v, o) in enumerate(rows)]
    timeline = load_timeline(events, duration=4.0)
    a = timeline[timeline["variant"] == "a"]
    assert a["t"].tolist() == [0.0, 1.0, 2.0, 3.0]
    assert a["sent"].tolist() == [2, 0, 0, 1] and a["refused"].tolist() == [0, 1, 0, 0]
    assert a["succeeded"].tolist() == [1, 0, 0, 1]
    b = timeline[timeline["variant"] == "b"]
    assert b["sent"].tolist() == [0, 1, 0, 0] and b["succeeded"].sum() == 0
    halves = load_timeline(events, bin_s=0.5, duration=2.0)
    assert halves[halves["variant"] == "a"]["sent"].tolist() == [1, 1, 0, 0]


def test_a_slow_failure_lets_more_calls_out_before_the_breaker_trips() -> None:
    config = {"failure_threshold": 5, "timeout": 30}
    scenario = single_phase({"mode": "down"}, duration_s=5, rate_per_s=50)
    quick = simulate_agents(scenario, Agent.none(), config, seed=1)
    slow = simulate_agents(scenario, Agent.none(), config, seed=1, fail_fast_s=0.2)
    sent = [sum(1 for r in run.run.rows if r[0] == "call" and r[3].value != "rejected")
            for run in (quick, slow)]
    assert sent[0] == 5  # one at a time: exactly the threshold
    assert sent[1] > 5  # calls admitted while the first five were failing
    first_failure = next(r for r in slow.run.rows if r[0] == "call")
    assert first_failure[2] == pytest.approx(0.2)


def test_agents_refuse_work_past_the_call_limit_before_simulating() -> None:
    """Arrivals x (1 + retries) is bounded up front, like `simulate`'s rate x duration."""
    from cblab.sim.agents import Agent, simulate_agents
    from cblab.sim.bounds import WorkLimitError

    agent = Agent("model", retries=10)
    with pytest.raises(WorkLimitError, match="max_calls"):
        simulate_agents("outage-and-recovery", agent, seed=1, rate=1e6)
    with pytest.raises(WorkLimitError, match=r"1 \+ retries"):
        simulate_agents("outage-and-recovery", agent, seed=1, max_calls=100)
