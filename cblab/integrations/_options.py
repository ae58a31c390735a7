"""Option checks shared by the integrations (a ConfigError names the option)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cblab import CircuitBreakerConfig, ConfigError


def as_config(where: str, value: Any) -> CircuitBreakerConfig:
    """A `CircuitBreakerConfig`, or its dict (say JSON tuned in the lab), validated."""
    if isinstance(value, CircuitBreakerConfig):
        return value
    if isinstance(value, Mapping):
        data = dict(value)
        if data.get("excluded_exceptions") == []:  # what to_dict() writes when there are none
            del data["excluded_exceptions"]
        try:
            return CircuitBreakerConfig.from_dict(data)
        except (ConfigError, TypeError) as exc:
            raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where} must be a CircuitBreakerConfig or a dict, got {value!r}")
