"""FaultProfile validation and the pure per-request decision."""

from __future__ import annotations

import math
import random
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cblab.faults import (
    DRAWS_PER_REQUEST,
    HEALTHY,
    ConstantLatency,
    FaultProfile,
    LognormalLatency,
    NormalLatency,
    ProfileError,
    RequestPlan,
    capacity_verdict,
    plan_request,
    rng_for,
)


def plans(profile: FaultProfile, n: int, seed: int = 7) -> list[RequestPlan]:
    rng = random.Random(seed)
    return [plan_request(profile, rng) for _ in range(n)]


# --- validation ---------------------------------------------------------------------


def test_defaults_are_a_healthy_service() -> None:
    assert FaultProfile() == HEALTHY
    assert HEALTHY.mode == "up" and HEALTHY.error_rate == 0 and HEALTHY.reset_rate == 0
    assert HEALTHY.latency == ConstantLatency(1.0)
    assert HEALTHY.status_mix == ((500, 1.0),)
    assert FaultProfile.from_dict({}) == HEALTHY


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"error_rate": 1.5}, "error_rate must be between 0 and 1, got 1.5"),
        ({"error_rate": -0.1}, "error_rate must be between 0 and 1"),
        ({"error_rate": True}, "error_rate must be a number"),
        ({"error_rate": "0.5"}, "error_rate must be a number"),
        ({"error_rate": math.nan}, "error_rate must be a finite number"),
        ({"reset_rate": 2}, "reset_rate must be between 0 and 1"),
        ({"slow_fraction": 1.01}, "slow_fraction must be between 0 and 1"),
        ({"slow_ms": -1}, "slow_ms must be >= 0"),
        ({"mode": "sideways"}, "mode must be one of up, hang, down, got 'sideways'"),
        ({"overflow": "drop"}, "overflow must be one of reject, queue"),
        ({"max_concurrency": 0}, "max_concurrency must be an integer >= 1 or null"),
        ({"max_concurrency": 2.5}, "max_concurrency must be an integer >= 1 or null"),
        ({"max_concurrency": True}, "max_concurrency must be an integer >= 1 or null"),
        ({"retry_after_s": -1}, "retry_after_s must be >= 0"),
        ({"status_mix": {}}, "status_mix must name at least one status"),
        ({"status_mix": {"404": 1}}, "status_mix keys must be among 429, 500, 502, 503, 504"),
        ({"status_mix": {"503": 0}}, "status_mix[503] must be > 0"),
        ({"status_mix": {"503": 1, 503: 2}}, "status_mix names status 503 twice"),
        ({"status_mix": [503]}, "status_mix must be an object"),
        (
            {"latency": {"kind": "uniform"}},
            "latency.kind must be one of constant, normal, lognormal",
        ),
        ({"latency": {"kind": "normal", "mean_ms": 5}}, "latency.sd_ms is required"),
        ({"latency": {"kind": "constant", "ms": -3}}, "latency.ms must be >= 0"),
        ({"latency": {"kind": "constant", "ms": 3, "sd_ms": 1}}, "unknown field 'latency.sd_ms'"),
        ({"latency": 5}, "latency must be an object"),
        ({"error_rat": 0.5}, "unknown field 'error_rat'; known fields: mode, error_rate"),
    ],
)
def test_invalid_profiles_name_the_field(data: dict, message: str) -> None:
    with pytest.raises(ProfileError) as info:
        FaultProfile.from_dict(data)
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_direct_construction_validates_and_normalises() -> None:
    with pytest.raises(ProfileError, match="error_rate"):
        FaultProfile(error_rate=3)
    profile = FaultProfile(status_mix={503: 1, 500: 3}, latency={"kind": "constant", "ms": 5})
    assert profile.status_mix == ((500, 3.0), (503, 1.0))
    assert profile.latency == ConstantLatency(5.0)


def test_round_trip_and_string_status_keys() -> None:
    data = {
        "mode": "up",
        "error_rate": 0.25,
        "status_mix": {"503": 2, "429": 1},
        "retry_after_s": 2.5,
        "latency": {"kind": "lognormal", "median_ms": 20, "sigma": 0.5},
        "slow_fraction": 0.1,
        "slow_ms": 900,
        "reset_rate": 0.01,
        "max_concurrency": 8,
        "overflow": "queue",
    }
    profile = FaultProfile.from_dict(data)
    assert profile.to_dict()["status_mix"] == {"429": 1.0, "503": 2.0}
    assert FaultProfile.from_dict(profile.to_dict()) == profile
    assert hash(profile) == hash(FaultProfile.from_dict(profile.to_dict()))


def test_merged_replaces_fields_and_merges_latency_parameters() -> None:
    base = FaultProfile.from_dict(
        {
            "error_rate": 0.1,
            "status_mix": {"503": 1},
            "latency": {"kind": "normal", "mean_ms": 20, "sd_ms": 4},
        }
    )
    patched = base.merged({"error_rate": 0.5, "latency": {"mean_ms": 80}})
    assert patched.error_rate == 0.5
    assert patched.latency == NormalLatency(80, 4)
    assert patched.status_mix == ((503, 1.0),)
    replaced = base.merged({"latency": {"kind": "constant", "ms": 3}, "status_mix": {"500": 1}})
    assert replaced.latency == ConstantLatency(3) and replaced.status_mix == ((500, 1.0),)
    assert base.error_rate == 0.1  # frozen: the original is unchanged
    with pytest.raises(ProfileError, match="unknown field 'bogus'"):
        base.merged({"bogus": 1})
    with pytest.raises(ProfileError, match=r"error_rate must be between 0 and 1, got 1\.5"):
        base.merged({"error_rate": 1.5})


# --- the decision ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["up", "hang", "down"])
def test_every_plan_consumes_exactly_five_draws(mode: str) -> None:
    profile = FaultProfile(
        mode=mode,
        error_rate=0.5,
        reset_rate=0.1,
        slow_fraction=0.2,
        latency={"kind": "lognormal", "median_ms": 5, "sigma": 1},
    )
    rng, reference = random.Random(3), random.Random(3)
    for _ in range(50):
        plan_request(profile, rng)
        for _ in range(DRAWS_PER_REQUEST):
            reference.random()
        assert rng.getstate() == reference.getstate()


def test_same_seed_same_plans_and_services_are_independent() -> None:
    profile = FaultProfile(
        error_rate=0.3,
        status_mix={"500": 1, "503": 1},
        reset_rate=0.05,
        latency={"kind": "normal", "mean_ms": 10, "sd_ms": 3},
    )

    def sequence(seed: int, service: str) -> list[RequestPlan]:
        rng = rng_for(seed, service)
        return [plan_request(profile, rng) for _ in range(200)]

    assert sequence(5, "users") == sequence(5, "users")
    assert sequence(5, "users") != sequence(6, "users")
    assert sequence(5, "users") != sequence(5, "orders")


def test_modes_take_precedence() -> None:
    always_fails = {"error_rate": 1, "reset_rate": 1}
    assert {p.kind for p in plans(FaultProfile(mode="down", **always_fails), 20)} == {"down"}
    hang = plans(FaultProfile(mode="hang", **always_fails), 20)
    assert {p.kind for p in hang} == {"hang"} and all(math.isinf(p.latency_s) for p in hang)
    assert {p.kind for p in plans(FaultProfile(**always_fails), 20)} == {"reset"}


def test_error_rate_one_follows_the_status_mix() -> None:
    profile = FaultProfile(error_rate=1, status_mix={"500": 1, "503": 3})
    counts = Counter(p.status for p in plans(profile, 4000))
    assert set(counts) == {500, 503}
    assert counts[503] / 4000 == pytest.approx(0.75, abs=0.03)


def test_error_rate_fraction() -> None:
    counts = Counter(p.kind for p in plans(FaultProfile(error_rate=0.2), 5000))
    assert counts["error"] / 5000 == pytest.approx(0.2, abs=0.02)
    assert counts["ok"] + counts["error"] == 5000


def test_429_plans_carry_retry_after() -> None:
    profile = FaultProfile(error_rate=1, status_mix={"429": 1, "500": 1}, retry_after_s=2.5)
    for plan in plans(profile, 200):
        assert plan.retry_after_s == (2.5 if plan.status == 429 else None)


def test_constant_latency_is_exact() -> None:
    profile = FaultProfile(latency={"kind": "constant", "ms": 40})
    assert {p.latency_s for p in plans(profile, 100)} == {0.04}


def test_normal_latency_distribution() -> None:
    profile = FaultProfile(latency={"kind": "normal", "mean_ms": 100, "sd_ms": 20})
    samples = [p.latency_s * 1000 for p in plans(profile, 5000)]
    assert statistics.fmean(samples) == pytest.approx(100, abs=1.5)
    assert statistics.stdev(samples) == pytest.approx(20, rel=0.05)


def test_normal_latency_is_truncated_at_zero() -> None:
    profile = FaultProfile(latency={"kind": "normal", "mean_ms": 1, "sd_ms": 5})
    samples = [p.latency_s for p in plans(profile, 2000)]
    assert min(samples) >= 0
    # conditioned on >= 0, not clamped: no pile-up of exact zeros
    assert samples.count(0.0) == 0


def test_lognormal_latency_distribution() -> None:
    profile = FaultProfile(latency={"kind": "lognormal", "median_ms": 30, "sigma": 0.8})
    samples = [p.latency_s * 1000 for p in plans(profile, 5000)]
    assert statistics.median(samples) == pytest.approx(30, rel=0.05)
    logs = [math.log(s) for s in samples]
    assert statistics.stdev(logs) == pytest.approx(0.8, rel=0.05)


def test_latency_quantiles_are_monotonic_and_finite_at_the_edges() -> None:
    for latency in (NormalLatency(50, 10), LognormalLatency(20, 1.0), ConstantLatency(3)):
        values = [latency.quantile_ms(u) for u in (0.0, 0.1, 0.5, 0.9, 0.999999)]
        assert values == sorted(values) and all(math.isfinite(v) and v >= 0 for v in values)


def test_slow_fraction_uses_slow_ms() -> None:
    profile = FaultProfile(slow_fraction=0.1, slow_ms=2000)
    latencies = [p.latency_s for p in plans(profile, 5000)]
    assert latencies.count(2.0) / 5000 == pytest.approx(0.1, abs=0.015)
    assert set(latencies) == {2.0, 0.001}


def test_capacity_verdict() -> None:
    unlimited = FaultProfile()
    assert capacity_verdict(unlimited, busy=10_000) == "admit"
    reject = FaultProfile(max_concurrency=2)
    assert capacity_verdict(reject, busy=1) == "admit"
    assert capacity_verdict(reject, busy=2) == "reject"
    queue = FaultProfile(max_concurrency=2, overflow="queue")
    assert capacity_verdict(queue, busy=2) == "queue"
    assert capacity_verdict(queue, busy=1, waiting=1) == "queue"  # first come, first served


# --- properties -----------------------------------------------------------------------

fractions = st.floats(0, 1)
latencies = st.one_of(
    st.builds(lambda ms: {"kind": "constant", "ms": ms}, st.floats(0, 1e4)),
    st.builds(
        lambda m, s: {"kind": "normal", "mean_ms": m, "sd_ms": s},
        st.floats(0, 1e4),
        st.floats(0, 1e3),
    ),
    st.builds(
        lambda m, s: {"kind": "lognormal", "median_ms": m, "sigma": s},
        st.floats(0, 1e4),
        st.floats(0, 3),
    ),
)
profiles = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.sampled_from(["up", "hang", "down"]),
        "error_rate": fractions,
        "status_mix": st.dictionaries(
            st.sampled_from(["429", "500", "502", "503", "504"]), st.floats(0.01, 100), min_size=1
        ),
        "retry_after_s": st.none() | st.floats(0, 3600),
        "latency": latencies,
        "slow_fraction": fractions,
        "slow_ms": st.floats(0, 1e5),
        "reset_rate": fractions,
        "max_concurrency": st.none() | st.integers(1, 1000),
        "overflow": st.sampled_from(["reject", "queue"]),
    },
)


@settings(max_examples=100, deadline=None)
@given(data=profiles, seed=st.integers(0, 2**32))
def test_any_valid_profile_round_trips_and_plans_sanely(data: dict, seed: int) -> None:
    profile = FaultProfile.from_dict(data)
    assert FaultProfile.from_dict(profile.to_dict()) == profile
    rng = random.Random(seed)
    for _ in range(20):
        plan = plan_request(profile, rng)
        assert plan.kind in {"ok", "error", "hang", "reset", "down"}
        assert plan.latency_s >= 0
        if plan.kind == "error":
            assert plan.status in dict(profile.status_mix)
