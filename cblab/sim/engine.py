"""A tiny discrete-event engine: a heap of scheduled callbacks and a virtual clock.

The shape of SimPy's core without processes: the queue is a heap of
``(time, serial, callback, args)``; the serial breaks ties, so events due at
the same instant run in the order they were scheduled. Only `step()`, `run()`,
`jump()` and `advance()` move time, and time never moves backwards.

The engine is its own clock: ``CircuitBreaker(..., clock=engine)`` reads
`engine()`, which is `engine.now`.

>>> env = Engine()
>>> env.schedule(2.0, print, "two")
>>> env.schedule(1.0, print, "one")
>>> env.run()
one
two
>>> env.now
2.0
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Engine", "EmptySchedule", "gc_paused"]


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a burst of allocations.

    A simulation allocates millions of small objects that die young or live
    to the end (rows) and makes no reference cycles; the collector would only
    rescan the growing row list again and again. Reference counting still frees
    everything; the previous setting is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class EmptySchedule(IndexError):
    """`step()` was called with nothing scheduled."""


class Engine:
    """Virtual time and a queue of scheduled callbacks."""

    __slots__ = ("_now", "_queue", "_serial")

    def __init__(self, start: float = 0.0) -> None:
        if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start):
            raise ValueError(f"start must be a finite number of seconds, got {start!r}")
        self._now = float(start)
        self._queue: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._serial = itertools.count().__next__

    @property
    def now(self) -> float:
        """The current virtual time, seconds. Read-only: only the engine moves it."""
        return self._now

    def __call__(self) -> float:
        """The engine as a clock (a zero-argument callable returning seconds)."""
        return self._now

    def __len__(self) -> int:
        """Number of scheduled events."""
        return len(self._queue)

    def __repr__(self) -> str:
        return f"Engine(now={self._now!r}, scheduled={len(self._queue)})"

    # --- scheduling -------------------------------------------------------------------

    def schedule(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` `delay` seconds from now (delay >= 0)."""
        if not delay >= 0:  # also refuses NaN
            raise ValueError(f"delay must be >= 0 seconds, got {delay!r}")
        heapq.heappush(self._queue, (self._now + delay, self._serial(), fn, args))

    def schedule_at(self, when: float, fn: Callable[..., Any], *args: Any) -> None:
        """Call `fn(*args)` at virtual time `when` (not in the past)."""
        if not when >= self._now:
            raise ValueError(f"cannot schedule at {when!r}: it is already {self._now!r}")
        heapq.heappush(self._queue, (when, self._serial(), fn, args))

    def peek(self) -> float:
        """Time of the next scheduled event, or inf when nothing is scheduled."""
        queue = self._queue
        return queue[0][0] if queue else math.inf

    # --- moving time ----------------------------------------------------------------------

    def step(self) -> None:
        """Move to the next event and run it."""
        try:
            when, _, fn, args = heapq.heappop(self._queue)
        except IndexError:
            raise EmptySchedule("nothing is scheduled") from None
        self._now = when
        fn(*args)

    def run(self, until: float | None = None) -> None:
        """Run events due at or before `until` (all of them when None), then stand at `until`.

        Events scheduled while running are run too if they fall due in time.
        """
        queue = self._queue
        pop = heapq.heappop
        if until is None:
            while queue:
                when, _, fn, args = pop(queue)
                self._now = when
                fn(*args)
            return
        if not until >= self._now:
            raise ValueError(f"cannot run until {until!r}: it is already {self._now!r}")
        while queue and queue[0][0] <= until:
            when, _, fn, args = pop(queue)
            self._now = when
            fn(*args)
        self._now = until

    def jump(self, when: float) -> bool:
        """Move straight to `when` if nothing is scheduled at or before it.

        The shortcut for an event the caller would schedule at `when` and that
        would run next: returns True after moving time (the caller then handles
        the event inline, exactly as `schedule_at(when, ...)` followed by
        `step()` would have), or False and changes nothing.
        """
        queue = self._queue
        if (queue and queue[0][0] <= when) or not when >= self._now:
            return False
        self._now = when
        return True

    def advance(self, when: float) -> bool:
        """Run the events due strictly before `when`, then `jump(when)`.

        For an event that nothing scheduled meanwhile can affect: the caller
        handles it inline at `when` when this returns True. False means another
        event is due at the same instant (time then stays at the last event run):
        schedule yours instead.
        """
        queue = self._queue
        pop = heapq.heappop
        while queue and queue[0][0] < when:
            at, _, fn, args = pop(queue)
            self._now = at
            fn(*args)
        if (queue and queue[0][0] <= when) or not when >= self._now:
            return False
        self._now = when
        return True
