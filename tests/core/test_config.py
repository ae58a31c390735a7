"""Invalid configuration is refused at construction, with the field named."""

from datetime import timedelta

import pytest

from cblab import (
    BreakerRegistry,
    CircuitBreaker,
    CircuitBreakerConfig,
    ConfigError,
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
    data = {k: v for k, v in config.to_dict().items() if k != "excluded_exceptions"}
    assert CircuitBreakerConfig.from_dict(data) == config
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
