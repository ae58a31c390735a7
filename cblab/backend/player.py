"""Live scenario playback: a background task that applies each phase's fault
profiles at its boundary, on the event loop's monotonic clock.

Phase 0 is applied before `start` returns. Boundaries are absolute (start time +
offset), so a slow `apply` never accumulates drift. When the last phase ends its
profiles stay in force; the player reports `finished`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from cblab.faults.scenario import Phase, Scenario

__all__ = ["ScenarioPlayer"]

log = logging.getLogger("cblab.backend")

ApplyPhase = Callable[[Phase], Awaitable[None]]


class ScenarioPlayer:
    def __init__(self, apply: ApplyPhase) -> None:
        self._apply = apply
        self._scenario: Scenario | None = None  # already scaled
        self._time_scale = 1.0
        self._task: asyncio.Task[None] | None = None
        self._started_at = 0.0
        self._finished_at: float | None = None
        self._index = 0
        self._error: str | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self, scenario: Scenario, time_scale: float = 1.0) -> None:
        """Stop any scenario in progress, then play `scenario` (durations x time_scale)."""
        scaled = scenario.scaled(time_scale)
        await self.stop()
        loop = asyncio.get_running_loop()
        self._scenario, self._time_scale = scaled, time_scale
        self._started_at, self._finished_at = loop.time(), None
        self._index, self._error = 0, None
        await self._apply_phase(0)
        self._task = loop.create_task(self._play(), name=f"cblab-scenario-{scenario.name}")

    async def stop(self) -> bool:
        """Stop playback (profiles stay as they are); True if one was running."""
        was_running = self.running
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._scenario = None
        return was_running

    async def wait(self) -> None:
        """Wait until the scenario in progress (if any) has played to the end."""
        if self._task is not None:
            await asyncio.wait([self._task])

    def status(self) -> dict[str, Any]:
        scenario = self._scenario
        if scenario is None:
            return {"running": False, "finished": False, "name": None}
        now = asyncio.get_running_loop().time()
        end = self._finished_at if self._finished_at is not None else now
        elapsed = end - self._started_at
        phase = scenario.phases[self._index]
        return {
            "running": self.running,
            "finished": self._finished_at is not None,
            "name": scenario.name,
            "description": scenario.description,
            "time_scale": self._time_scale,
            "phase_index": self._index,
            "phase_name": phase.name,
            "phase_count": len(scenario.phases),
            "elapsed_s": elapsed,
            "phase_elapsed_s": elapsed - scenario.phase_starts[self._index],
            "total_duration_s": scenario.total_duration_s,
            "error": self._error,
        }

    async def _apply_phase(self, index: int) -> None:
        assert self._scenario is not None
        self._index = index
        try:
            await self._apply(self._scenario.phases[index])
        except OSError as exc:  # e.g. the port was taken while the service was down
            self._error = f"phase {index}: {exc}"
            log.error("scenario %s: %s", self._scenario.name, self._error)

    async def _play(self) -> None:
        scenario = self._scenario
        assert scenario is not None
        loop = asyncio.get_running_loop()
        starts = scenario.phase_starts
        for index in range(1, len(scenario.phases)):
            await asyncio.sleep(max(0.0, self._started_at + starts[index] - loop.time()))
            await self._apply_phase(index)
        await asyncio.sleep(max(0.0, self._started_at + scenario.total_duration_s - loop.time()))
        self._finished_at = loop.time()
