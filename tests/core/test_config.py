"""Invalid configuration is refused at construction, with the field named."""

import json
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cblab import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitBreakerConfig,
    ConfigError,
    ConsecutiveFailures,
    CountWindow,
    CumulativeFailures,
    TimeWindow,
)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"failure_threshold": 0}, "failure_threshold must be an integer >= 1"),
        ({"failure_threshold": 2.5}, "failure_threshold"),
        ({"failure_threshold": True}, "failure_threshold"),
        ({"success_threshold": 0}, "success_threshold"),
        ({"half_open_max_calls": -1}, "half_open_max_calls"),
        ({"timeout": -1}, "timeout must be >= 0"),
        ({"timeout": timedelta(seconds=-5)}, "timeout"),
        ({"timeout": float("nan")}, "timeout"),
        ({"timeout": "30"}, "timeout must be a number of seconds"),
        ({"success_threshold": 4, "half_open_max_calls": 3}, "could never close"),
        ({"call_timeout": 0}, "call_timeout"),
        ({"max_trial_duration": -2}, "max_trial_duration"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"timeout": 10, "max_timeout": 5}, "max_timeout"),
        ({"excluded_exceptions": ("KeyError",)}, "excluded_exceptions"),
        ({"is_excluded": 3}, "is_excluded"),
        ({"policy": "consecutive"}, "policy must be one of"),
        ({"policy": CountWindow(size=5, minimum_calls=10)}, "policy.minimum_calls"),
        ({"policy": CountWindow(failure_rate_threshold=1.5)}, "policy.failure_rate_threshold"),
        ({"policy": CountWindow(failure_rate_threshold=0)}, "policy.failure_rate_threshold"),
        ({"policy": TimeWindow(window=0)}, "policy.window"),
        ({"policy": TimeWindow(buckets=0)}, "policy.buckets"),
        ({"policy": TimeWindow(slow_call_duration=-1)}, "policy.slow_call_duration"),
        ({"policy": {"name": "nope"}}, "policy.name must be one of"),
        ({"policy": {"name": "count_window", "sise": 3}}, "sise"),
    ],
)
def test_invalid_config_names_the_field(fields, message):
    with pytest.raises(ConfigError, match=message):
        CircuitBreakerConfig(**fields)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)


def test_from_dict_round_trip_and_unknown_keys():
    config = CircuitBreakerConfig(
        failure_threshold=3,
        timeout=timedelta(seconds=60),
        policy=CountWindow(size=20, minimum_calls=5),
    )
    assert CircuitBreakerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown configuration field"):
        CircuitBreakerConfig.from_dict({"failure_treshold": 3})
    with pytest.raises(ConfigError, match="must be an object"):
        CircuitBreakerConfig.from_dict([1, 2])
    with pytest.raises(ConfigError, match="unknown configuration field"):
        CircuitBreakerConfig().replace(bogus=1)
    with pytest.raises(ConfigError, match="could never close"):
        CircuitBreakerConfig().replace(half_open_max_calls=1)


def test_policy_from_dict_builds_each_policy():
    for policy in (
        CumulativeFailures(),
        CountWindow(size=7, minimum_calls=5),
        TimeWindow(window=5, buckets=5),
    ):
        config = CircuitBreakerConfig(policy=policy.to_dict())
        assert config.policy == policy


def test_breaker_refuses_bad_arguments():
    with pytest.raises(ConfigError, match="name"):
        CircuitBreaker("")
    with pytest.raises(ConfigError, match="config must be"):
        CircuitBreaker("x", {"failure_threshold": 3})
    with pytest.raises(ConfigError, match="clock"):
        CircuitBreaker("x", clock=12)


def test_registry_one_breaker_per_name():
    registry = BreakerRegistry()
    github = registry.get("github", CircuitBreakerConfig(failure_threshold=3))
    assert registry.get("github") is github
    assert registry.get("github", CircuitBreakerConfig(failure_threshold=3)) is github
    with pytest.raises(ConfigError, match="different config"):
        registry.get("github", CircuitBreakerConfig(failure_threshold=4))
    with pytest.raises(KeyError, match="no breaker named 'db'"):
        registry["db"]


class BusinessError(Exception):
    """A module-level exception: it has a name that data can carry."""


def is_not_found(exc: BaseException) -> bool:
    return "404" in str(exc)


_policies = st.one_of(
    st.just(ConsecutiveFailures()),
    st.just(CumulativeFailures()),
    st.builds(
        CountWindow,
        size=st.integers(5, 50),
        failure_rate_threshold=st.sampled_from([0.25, 0.5, 1.0]),
        minimum_calls=st.integers(1, 5),
        slow_call_duration=st.sampled_from([None, 0.5, 2.0]),
        slow_call_rate_threshold=st.sampled_from([0.5, 1.0]),
    ),
    st.builds(
        TimeWindow,
        window=st.sampled_from([1.0, 30.0, 60.5]),
        buckets=st.integers(1, 12),
        failure_rate_threshold=st.sampled_from([0.1, 0.5]),
        minimum_calls=st.integers(1, 20),
        slow_call_duration=st.sampled_from([None, 1.5]),
    ),
)


@st.composite
def configs(draw):
    half_open = draw(st.integers(1, 5))
    timeout = draw(st.sampled_from([0.0, 0.5, 30.0, timedelta(minutes=2)]))
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    return CircuitBreakerConfig(
        failure_threshold=draw(st.integers(1, 20)),
        success_threshold=draw(st.integers(1, half_open)),
        timeout=timeout,
        half_open_max_calls=half_open,
        policy=draw(_policies),
        call_timeout=draw(st.sampled_from([None, 0.25, 10.0])),
        max_trial_duration=draw(st.sampled_from([None, 1.0])),
        backoff_multiplier=draw(st.sampled_from([1.0, 1.5, 2.0])),
        max_timeout=draw(st.sampled_from([None, seconds + 60.0])),
        excluded_exceptions=draw(st.sampled_from([(), (KeyError,), (BusinessError, TimeoutError)])),
        is_excluded=draw(st.sampled_from([None, is_not_found])),
    )


@given(configs())
def test_every_config_round_trips_through_to_dict_and_json(config):
    assert CircuitBreakerConfig.from_dict(config.to_dict()) == config
    assert CircuitBreakerConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_code_is_written_by_module_and_name():
    data = CircuitBreakerConfig(
        excluded_exceptions=(KeyError, BusinessError), is_excluded=is_not_found
    ).to_dict()
    assert data["excluded_exceptions"] == ["builtins:KeyError", f"{__name__}:BusinessError"]
    assert data["is_excluded"] == f"{__name__}:is_not_found"
    # a bare name is a builtin
    assert CircuitBreakerConfig.from_dict(
        {"excluded_exceptions": ["KeyError"]}
    ).excluded_exceptions == (KeyError,)


def test_code_without_a_loadable_name_is_named_in_a_clear_error():
    class LocalError(Exception):
        pass

    local = CircuitBreakerConfig(excluded_exceptions=(LocalError,)).to_dict()
    with pytest.raises(ConfigError, match=r"excluded_exceptions: .*LocalError.* inside a function"):
        CircuitBreakerConfig.from_dict(local)
    lam = CircuitBreakerConfig(is_excluded=lambda e: False).to_dict()
    with pytest.raises(ConfigError, match=r"is_excluded: .*<lambda>.* module level"):
        CircuitBreakerConfig.from_dict(lam)
    with pytest.raises(ConfigError, match=r"module 'not_imported_anywhere' .* is not imported"):
        CircuitBreakerConfig.from_dict({"excluded_exceptions": ["not_imported_anywhere:Boom"]})
    with pytest.raises(ConfigError, match="'builtins:NoSuchError' not found"):
        CircuitBreakerConfig.from_dict({"excluded_exceptions": ["builtins:NoSuchError"]})
    with pytest.raises(ConfigError, match="excluded_exceptions must be a tuple of exception"):
        CircuitBreakerConfig.from_dict({"excluded_exceptions": ["builtins:len"]})
    with pytest.raises(ConfigError, match="must name code"):
        CircuitBreakerConfig.from_dict({"is_excluded": ""})


def test_window_policies_document_that_they_ignore_failure_threshold():
    # Accepted (a live policy switch must not fail on it), and it changes nothing.
    a = CircuitBreaker(
        "a", CircuitBreakerConfig(failure_threshold=1, policy=CountWindow(size=4, minimum_calls=4))
    )
    for _ in range(3):
        a.record(a.admit(), "failure")
    assert a.state == "closed"  # three failures, threshold 1: a window waits for minimum_calls
    assert "failure_threshold" not in a.get_status()["policy"]
    assert "do not use it" in CircuitBreakerConfig.__doc__


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"timeout": 1e300}, "timeout must be at most"),
        ({"call_timeout": 10.0**9}, "call_timeout must be at most"),
        ({"failure_threshold": 10**17}, "failure_threshold must be an integer >= 1 and at most"),
        ({"backoff_multiplier": 1e9}, "backoff_multiplier must be a number from 1 to 1000"),
        ({"policy": {"name": "count_window", "size": 10**12}}, "policy.size must be an integer"),
        ({"policy": {"name": "time_window", "window": 1e12}}, "policy.window must be a positive"),
    ],
)
def test_absurdly_large_values_are_refused_naming_the_field(fields, message):
    # Configs arrive from admin routes and files: a huge number is a typo or an attack.
    with pytest.raises(ConfigError, match=message):
        CircuitBreakerConfig.from_dict(fields)
