"""Clocks: the breaker reads time only through a zero-argument callable returning seconds."""

from __future__ import annotations

import time
from collections.abc import Callable

Clock = Callable[[], float]

#: The default clock. Monotonic, so wall-clock steps (NTP, DST, a user changing
#: the date) never open or close a breaker.
monotonic: Clock = time.monotonic


class ManualClock:
    """A clock that moves only when told to: tests and the simulator drive it.

    >>> clock = ManualClock()
    >>> clock.advance(30)
    30.0
    """

    __slots__ = ("now",)

    def __init__(self, start: float = 0.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (which may be 0) and return the new time."""
        if seconds < 0:
            raise ValueError(f"a clock cannot move backwards, got advance({seconds})")
        self.now += seconds
        return self.now

    def set(self, now: float) -> None:
        """Jump to `now`, in either direction (to test what a stepped clock does)."""
        self.now = float(now)

    def __repr__(self) -> str:
        return f"ManualClock(now={self.now!r})"
