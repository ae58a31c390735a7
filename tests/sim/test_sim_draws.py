"""Draws: a seed's arrivals and backend plans, shared by runs that differ only in
breaker settings, give each run exactly the events it gets on its own."""

from __future__ import annotations

import pytest

from cblab.faults.profile import plan_request, rng_for
from cblab.faults.scenario import Scenario
from cblab.sim import load_phases, simulate
from cblab.sim import model as sim_model
from cblab.sim.model import Draws, _plan_error

from .pinned import FLAPPING_FITTED

CONFIGS = [{"failure_threshold": 1, "timeout": 2.0}, {"failure_threshold": 20, "timeout": 60.0},
           {"failure_threshold": 3, "timeout": 5.0, "half_open_max_calls": 1,
            "success_threshold": 1}]


def draws_for(scenario: Scenario, seed: int, service: str = "users") -> Draws:
    return Draws(scenario, load_phases(scenario), seed=seed, service=service)


@pytest.mark.parametrize("name", ["flapping", "hang", "overload"])
def test_runs_sharing_draws_give_their_own_events_in_any_order(name, monkeypatch):
    # small chunks: runs ask for plans chunk by chunk, in a different order each time
    monkeypatch.setattr(sim_model, "PLAN_CHUNK", 7)
    scenario = Scenario.load(name)
    service = "orders" if name == "overload" else "users"
    alone = [simulate(scenario, c, seed=5, service=service) for c in CONFIGS]
    shared = draws_for(scenario, 5, service)
    for i in (2, 0, 1):
        run = simulate(scenario, CONFIGS[i], seed=5, service=service, draws=shared)
        assert run.rows == alone[i].rows
        assert run.counts == alone[i].counts


def test_plan_k_of_a_profile_is_what_one_stream_gives_request_k(monkeypatch):
    monkeypatch.setattr(sim_model, "PLAN_CHUNK", 4)
    scenario = Scenario.from_dict(FLAPPING_FITTED)
    draws = draws_for(scenario, 3)
    profiles = draws.profiles
    for index in (3, 1, 2, 0):  # phases whose profiles differ, asked out of order
        rng = rng_for(3, "users")  # one stream, every request under this phase's profile
        expected = [plan_request(profiles[index], rng) for _ in range(30)]
        plans = draws.phase_plans[index]
        for k in (29, 0, 13, 4, 5, 28):
            kind, latency, _, error = draws.plan(plans, k)
            assert (kind, latency, error) == (expected[k].kind, expected[k].latency_s,
                                              _plan_error(expected[k]))


def test_phases_with_equal_profiles_share_one_plan_list():
    draws = draws_for(Scenario.from_dict(FLAPPING_FITTED), 0)
    lists = {id(plans) for plans in draws.phase_plans}
    distinct = []
    for profile in draws.profiles:
        if profile not in distinct:
            distinct.append(profile)
    assert len(lists) == len(distinct) < len(draws.phase_plans)


def test_draws_for_another_run_are_refused():
    scenario = Scenario.load("flapping")
    draws = draws_for(scenario, 1)
    for kwargs in ({"seed": 2}, {"seed": "1"}, {"seed": 1, "service": "orders"},
                   {"seed": 1, "rate": 50.0}, {"seed": 1, "time_scale": 2.0}):
        with pytest.raises(ValueError, match="draws were made for another"):
            simulate(scenario, None, draws=draws, **kwargs)
    with pytest.raises(ValueError, match="draws were made for another"):
        simulate("hang", None, seed=1, draws=draws)
    simulate(scenario, None, seed=1, draws=draws)  # its own run is fine
