"""The arithmetic of retrying, standard library only: the retry budget and full jitter.

Shared by `cblab.integrations.retry` (real calls) and `cblab.sim.agents` (virtual
ones), so a budget or a backoff means the same thing in both.
"""

from __future__ import annotations

import math
import random
from typing import Any

from cblab import ConfigError

__all__ = ["RetryBudget", "backoff_limit", "full_jitter", "streak_limit"]


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


def streak_limit(value: Any) -> int | None:
    """`max_streak` as a whole number >= 1, or None, or a ConfigError."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 2:
        raise ConfigError("max_streak must be a whole number >= 2 (1 would never retry) "
                          f"or None, got {value!r}")
    return value


class RetryBudget:
    """The state that decides whether a retry may go, shared by every call through one
    breaker: a token bucket and a failure streak.

    Tokens: `deposit()` per call adds `ratio` tokens (at most `burst` held),
    `withdraw()` per retry takes one if there is one. Starts full. Retries over any
    stretch are at most ``burst + ratio * calls`` made in it.

    Streak: `record(ok, retry)` per attempt's answer from the dependency counts the
    calls in a row whose first attempt failed (a success, first attempt or retry,
    resets it; a retry's failure does not add to it, so a lone caller still gets all
    its attempts). Once `max_streak` calls in a row have failed, `withdraw()` says no
    until a success (2: a call is not retried when the call before it failed too).
    Calls failing in a row mean an outage, not a blip: retries then only add load,
    and behind a breaker they race its trip (a retry admitted while it counts
    consecutive failures goes out beside the calls in flight when it opens).
    None: tokens only.
    """

    __slots__ = ("ratio", "burst", "max_streak", "tokens", "streak", "denied",
                 "denied_streak")

    def __init__(self, ratio: float = 0.1, burst: float = 10.0,
                 max_streak: int | None = None) -> None:
        self.ratio = seconds("budget_ratio", ratio, allow_zero=True)
        self.burst = seconds("budget_burst", burst, allow_zero=True)
        self.max_streak = streak_limit(max_streak)
        self.tokens = self.burst
        self.streak = 0
        self.denied = 0  # retries refused, for either reason
        self.denied_streak = 0  # of which because of the streak

    def deposit(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def record(self, ok: bool, retry: bool = False) -> None:
        """One attempt's answer from the dependency: a success or a counted failure;
        `retry`: the attempt was a retry (its failure does not lengthen the streak)."""
        if ok:
            self.streak = 0
        elif not retry:
            self.streak += 1

    @property
    def streak_blocks(self) -> bool:
        """True while the failure streak refuses retries."""
        return self.max_streak is not None and self.streak >= self.max_streak

    def withdraw(self) -> bool:
        if self.streak_blocks:
            self.denied += 1
            self.denied_streak += 1
            return False
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        self.denied += 1
        return False

    def recheck(self) -> bool:
        """Just before a granted retry goes out: False (its token back) when calls have
        failed in a row meanwhile. The backoff is long enough for other calls to fail:
        the decision is taken again on what is known when the retry would be sent."""
        if not self.streak_blocks:
            return True
        self.tokens = min(self.burst, self.tokens + 1.0)
        self.denied += 1
        self.denied_streak += 1
        return False

    def __repr__(self) -> str:
        return (f"RetryBudget(ratio={self.ratio}, burst={self.burst}, "
                f"max_streak={self.max_streak}, tokens={self.tokens:.2f}, streak={self.streak})")
