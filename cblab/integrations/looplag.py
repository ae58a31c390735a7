"""How far behind this process's event loop runs: the measure of *local* overload.

A deadline covers the dependency's answer *and* this process reading it. When
the event loop is saturated (hundreds of sessions parsed, serialised and
dispatched on two cores), an answer that arrived in time waits in a socket
buffer until the loop gets to it, and the call misses its deadline although the
dependency was healthy. `LoopLag` measures that: a ticker asks to be woken every
`interval` seconds and notes how late each wake-up ran.

- `lag()`: how late the loop runs, sustained (the last wake-ups' lateness,
  smoothed): what admission decides on. A saturated loop stays behind; one
  stall (the machine gave the CPU to another process for a moment) barely
  moves it. Shedding on the instant's lateness refused calls the server could
  still serve (150 sessions at once, machine load 8-13: 31-59 of 150 answered;
  on the sustained lag 110-117);
- `stall()`: the running total of lateness, in seconds, counting the pending
  wake-up's lateness at once (a loop blocked right now is already behind);
  the difference between two readings is how long the loop was behind during
  that interval (`stalled_since(mark)`), which is what a deadline is extended by.

Lateness under `noise` per wake-up (the operating system's scheduling jitter on
a busy machine) is not counted, so an idle loop reads 0 on any machine.

`LoopDeadline` is a whole-call deadline measured in time this process could
run: when it passes, the call gets the time the loop was behind meanwhile
added (up to `max_extension` of the deadline), so an answer that arrived in time
but waited for the loop is read and counted as the success it was; a dependency
that never answers still fails, one extension later. If the loop is still
owed time when the extension runs out, the miss is `local`: this process, not
the dependency, was too slow.

One ticker per event loop (`LoopLag.of_running_loop()`), started on first use
and stopped when nobody asked for a reading for `idle_after` seconds, so a
library user pays nothing while idle. Standard library only.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

__all__ = ["LoopDeadline", "LoopLag"]


class LoopLag:
    """Event-loop lag of one loop (see the module doc)."""

    _monitors: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopLag]] = (
        weakref.WeakKeyDictionary())

    def __init__(self, *, interval: float = 0.025, noise: float = 0.005,
                 idle_after: float = 10.0, smoothing: float = 0.3) -> None:
        if not (interval > 0 and noise >= 0 and idle_after > 0 and 0 < smoothing <= 1):
            raise ValueError("interval and idle_after must be > 0, noise >= 0, "
                             "0 < smoothing <= 1")
        self.interval = float(interval)
        self.noise = float(noise)
        self.idle_after = float(idle_after)
        self.smoothing = float(smoothing)
        self._task: asyncio.Task[None] | None = None
        self._due = 0.0  # when the pending wake-up should run (loop time), 0: none
        self._stall = 0.0  # lateness counted so far, seconds
        self._smoothed = 0.0
        self._wanted_until = 0.0
        self.peak = 0.0  # the largest lateness of one wake-up seen
        self.ticks = 0

    @classmethod
    def of_running_loop(cls) -> LoopLag:
        """The running loop's monitor (made on first use)."""
        loop = asyncio.get_running_loop()
        monitor = cls._monitors.get(loop)
        if monitor is None:
            monitor = cls._monitors[loop] = cls()
        return monitor

    # --- readings ---------------------------------------------------------------------

    def _overdue(self, now: float) -> float:
        late = now - self._due if self._due else 0.0
        return late if late > self.noise else 0.0

    def _keep_running(self) -> float:
        """Note a reader; start the ticker if needed. Returns the loop's time."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop, no lag
            return 0.0
        now = loop.time()
        self._wanted_until = now + self.idle_after
        if self._task is None or self._task.done():
            self._due = now + self.interval
            self._task = loop.create_task(self._tick(), name="cblab-loop-lag")
        return now

    def lag(self) -> float:
        """Seconds the loop runs behind, sustained: the smoothed lateness of recent
        wake-ups. One long stall (the process was descheduled) moves it a little; a
        loop that stays behind (saturated by its own work) moves it all the way."""
        self._keep_running()
        return self._smoothed

    def stall(self) -> float:
        """Total lateness so far (seconds); subtract two readings for an interval."""
        now = self._keep_running()
        return self._stall + (self._overdue(now) if now else 0.0)

    def stalled_since(self, mark: float) -> float:
        """Seconds the loop was behind since `mark` (an earlier `stall()`)."""
        return max(self.stall() - mark, 0.0)

    # --- the ticker -----------------------------------------------------------------

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < self._wanted_until:
                await asyncio.sleep(self.interval)
                now = loop.time()
                late = now - self._due
                counted = late if late > self.noise else 0.0
                self._stall += counted
                self._smoothed += self.smoothing * (counted - self._smoothed)
                self.peak = max(self.peak, late)
                self.ticks += 1
                self._due = now + self.interval
        finally:
            self._due = 0.0
            self._smoothed = 0.0
            self._task = None  # holds no reference to a loop that may be closed next

    def status(self) -> dict[str, float]:
        return {"lag_s": round(self.lag(), 4), "stall_s": round(self._stall, 4),
                "peak_s": round(self.peak, 4)}


class LoopDeadline:
    """`async with LoopDeadline(seconds, lag):` an `asyncio.timeout` extended by the
    loop's lag during the block (see the module doc). After a `TimeoutError`,
    `expired()` is True and `local` says whether the loop was still owed more than
    `stall_share` of the deadline when the extension ran out."""

    def __init__(self, seconds: float, lag: LoopLag, *, max_extension: float = 1.0,
                 stall_share: float = 0.1) -> None:
        self.seconds = float(seconds)
        self.lag = lag
        self.max_extension = float(max_extension)
        self.stall_share = float(stall_share)
        self.local = False
        self.extended = 0.0  # seconds added to the deadline
        self._scope = asyncio.timeout(None)
        self._handle: asyncio.TimerHandle | None = None
        self._mark = 0.0

    async def __aenter__(self) -> LoopDeadline:
        await self._scope.__aenter__()
        loop = asyncio.get_running_loop()
        self._mark = self.lag.stall()
        self._handle = loop.call_at(loop.time() + self.seconds, self._due)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        await self._scope.__aexit__(*exc_info)  # turns our cancellation into TimeoutError

    def _due(self) -> None:
        loop = asyncio.get_running_loop()
        owed = self.lag.stalled_since(self._mark) - self.extended
        room = self.seconds * self.max_extension - self.extended
        if owed > self.lag.noise and room > 0:
            step = min(owed, room)  # the loop time the call was denied: give it back
            self.extended += step
            self._handle = loop.call_at(loop.time() + step, self._due)
            return
        self._handle = None
        self.local = owed >= self.stall_share * self.seconds
        self._scope.reschedule(loop.time())  # fire now

    def expired(self) -> bool:
        return self._scope.expired()
