"""The arithmetic of retrying, standard library only: the retry budget and full jitter.

Shared by `cblab.integrations.retry` (real calls) and `cblab.sim.agents` (virtual
ones), so a budget or a backoff means the same thing in both.
"""

from __future__ import annotations

import math
import random
from typing import Any

from cblab import ConfigError

__all__ = ["RetryBudget", "backoff_limit", "full_jitter"]


def seconds(where: str, value: Any, *, allow_zero: bool = False, allow_none: bool = False) -> Any:
    """`value` as float seconds (or a ratio), or a ConfigError naming `where`."""
    if value is None and allow_none:
        return None
    if (isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value)
            or value < 0 or (value == 0 and not allow_zero)):
        need = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{where} must be a finite number {need}, got {value!r}")
    return float(value)


def backoff_limit(backoff: float, max_backoff: float, retry: int) -> float:
    """The longest wait before retry number `retry` (1-based): exponential, capped."""
    return min(max_backoff, backoff * 2 ** (retry - 1))


def full_jitter(rng: random.Random, backoff: float, max_backoff: float, retry: int) -> float:
    """AWS's "full jitter": a uniform draw in [0, backoff_limit]."""
    return rng.uniform(0.0, backoff_limit(backoff, max_backoff, retry))


class RetryBudget:
    """A token bucket: `deposit()` per call adds `ratio` tokens (at most `burst` held),
    `withdraw()` per retry takes one if there is one. Starts full. Retries over any
    stretch are at most ``burst + ratio * calls`` made in it."""

    __slots__ = ("ratio", "burst", "tokens", "denied")

    def __init__(self, ratio: float = 0.1, burst: float = 10.0) -> None:
        self.ratio = seconds("budget_ratio", ratio, allow_zero=True)
        self.burst = seconds("budget_burst", burst, allow_zero=True)
        self.tokens = self.burst
        self.denied = 0

    def deposit(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def withdraw(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.denied += 1
        return False

    def __repr__(self) -> str:
        return f"RetryBudget(ratio={self.ratio}, burst={self.burst}, tokens={self.tokens:.2f})"
