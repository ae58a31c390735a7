"""A live lab session without widgets: load, event polling and control changes.

    from cblab.lab.session import LabSession

    session = LabSession(variants=("protected",)).start()   # returns at once
    session.set(error_rate=100)                             # from any thread
    session.wait(timeout=30)                                # or: await session.wait_async()
    session.summary()["protected"]["states_seen"]

Everything that talks to the servers runs on the lab's own event loop
(`cblab.lab.loop`), in its own thread: the stack start, one `LoadGenerator` per
variant (in a child process of its own, `cblab.lab.loadproc`), polling each
server's events into a `LiveFeed`, debounced control changes and the autopilot.
Nothing a notebook draws can delay a call or shift its measured latency. The
view (`cblab.lab.live.LiveLab`) reads `arrays()`, `status()` and `note` a few
times a second from the kernel's thread; every read and write of shared state
holds the session's lock.

A session ends three ways, each a `phase`: "finished" (its bounded run is over),
"stopped" (`stop()`: the Stop button) or "failed" (`error` says why). Finished and
stopped both leave a complete recording: `ended` is True and `events()` and
export work.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import CircuitBreakerConfig, ConfigError
from ..demo import LAB_ROUTE
from .controls import BREAKER_FIELDS, CONTROL_NAMES, FAULT_FIELDS, check_value, select
from .feed import LiveFeed
from .loadproc import ProcessLoad
from .loop import submit
from .params import AutopilotStep, LabParams
from .target import LabTarget, StackTarget

if TYPE_CHECKING:
    import pandas as pd

    from ..faults import Scenario
    from ..load import LoadGenerator
    from ..stack import Stack

__all__ = ["LabSession", "Note"]

_DEBOUNCE_S = 0.25  # a dragged slider sends many values: apply the one it rests on
_POLL_HZ = 10.0
_MAX_IO_FAILURES = 25  # polls in a row that may fail before the session gives up


@dataclass(frozen=True, slots=True)
class Note:
    """The last word on a settings change, for the person who moved the control."""

    text: str = ""
    bad: bool = False
    serial: int = 0


def _utc_iso() -> str:
    now = dt.datetime.now(dt.UTC)
    return now.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def latency_profile(ms: float) -> dict[str, Any]:
    """The backend's latency for a slider value: normal, 15 % spread."""
    ms = float(ms)
    return {"kind": "normal", "mean_ms": ms, "sd_ms": round(ms * 0.15, 3)}


class LabSession:
    """One live run: see the module docstring.

    `target` is what the session drives (a `LabTarget`; an MCP URL or stdio command
    line becomes a `cblab.lab.proxy_target.ProxyTarget`, its `tool` called with
    `arguments`); by default a `StackTarget`
    over `stack` (a running `Stack` to share, left running) or over a fresh one
    (started here and stopped at the end). `controls` names the controls this
    session has; a `scenario` (played by the backend from the start, squeezed into
    ``params.run_seconds`` when the run is bounded) replaces the fault controls.
    `load_process`: run each variant's load generator in a child process (the
    default when the target gives URLs; see `cblab.lab.loadproc`). The recording
    keeps the whole session, `recording_rows` rows in memory and the rest on disk.
    """

    def __init__(
        self,
        params: LabParams | None = None,
        *,
        target: LabTarget | str | Sequence[str] | None = None,
        arguments: Mapping[str, Any] | None = None,
        stack: Stack | None = None,
        variants: Sequence[str] = ("protected",),
        controls: Sequence[str] = CONTROL_NAMES,
        service: str = LAB_ROUTE.service,
        tool: str = LAB_ROUTE.tool,
        breaker: str = LAB_ROUTE.breaker,
        latency_ms: float = 20.0,
        deadline: float = 2.0,
        config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
        scenario: Scenario | str | None = None,
        time_scale: float | None = None,
        load_process: bool = True,
        recording_rows: int = 20_000,
    ) -> None:
        self.params = params or LabParams.from_env()
        if not variants:
            raise ValueError("a live session needs at least one variant")
        if target is not None and stack is not None:
            raise ValueError("give a target or a stack, not both")
        self.variants = list(variants)
        self.service, self.tool, self.breaker = service, tool, breaker
        self.deadline = deadline
        self.load_process = load_process
        self.arguments = None if arguments is None else dict(arguments)
        if isinstance(target, (str, list, tuple)):  # any MCP server: URL or stdio command
            from .proxy_target import ProxyTarget

            target = ProxyTarget(target, tool, variants=self.variants, seed=self.params.seed,
                                 deadline=deadline)
        self.target: LabTarget = target or StackTarget(  # type: ignore[assignment]  # str/list
            self.variants, stack=stack, seed=self.params.seed, deadline=deadline)  # -> ProxyTarget
        self.config = CircuitBreakerConfig(
            failure_threshold=self.params.failure_threshold,
            timeout=self.params.breaker_timeout,
            success_threshold=2,
            half_open_max_calls=3,
        )
        if isinstance(config, CircuitBreakerConfig):
            self.config = config
        elif config is not None:
            self.config = self.config.replace(**dict(config))
        names = select(controls)
        self.scenario: Scenario | None = None
        if scenario is not None:
            from ..sim import resolve_scenario

            plan = resolve_scenario(scenario)
            if time_scale is None:
                run = self.params.run_seconds
                time_scale = min(1.0, run / plan.total_duration_s) if run else 1.0
            self.scenario = plan if time_scale == 1 else plan.scaled(time_scale)
            names = [n for n in names if n not in FAULT_FIELDS]
        if not any(self.target.protected(v) for v in self.variants):
            names = [n for n in names if n not in BREAKER_FIELDS]
        initial: dict[str, Any] = {
            "error_rate": 0, "latency_ms": round(latency_ms), "outage": "up",
            "rate": round(self.params.rate), **self._config_fields(self.config),
        }
        #: The controls this session has and their values (what the person set).
        self.values: dict[str, Any] = {n: initial[n] for n in names}
        if isinstance(recording_rows, bool) or not isinstance(recording_rows, int) or (
            recording_rows < 1
        ):
            raise ValueError(f"recording_rows must be an int >= 1, got {recording_rows!r}")
        # The chart's latency points are shared by the variants: the browser's cost
        # per redraw grows with the points, and two variants must not draw half as often.
        self.feed = LiveFeed(self.params.window_s, breaker=breaker, record_rows=recording_rows,
                             max_points=max(self.params.chart_points // len(self.variants), 20))
        self.generators: dict[str, LoadGenerator | ProcessLoad] = {}
        self.phase = "idle"  # idle, starting, running, finished, stopped, failed
        self.error: BaseException | None = None
        self.started_at: float | None = None  # time.monotonic() when the lab clock started
        self.started_wall: str | None = None  # the same instant, UTC ISO 8601 (run.json)
        self.ended_at: float | None = None  # lab seconds when the run ended
        self.applied: list[tuple[float, str, Any]] = []  # (lab time, control, value)
        self.autopilot_skipped: list[AutopilotStep] = []  # steps for controls it lacks
        self.io_errors = 0
        self.last_io_error: str | None = None
        self.note = Note()
        self._autopilot = list(self.params.autopilot)
        self._pending: dict[str, tuple[float, Any]] = {}
        self._offsets: dict[str, float] = {}
        self._cursors: dict[str, int] = {}
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._future: concurrent.futures.Future[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- lifecycle (any thread) -----------------------------------------------------------

    def start(self) -> LabSession:
        """Start the run on the lab's loop and return at once (again: no-op)."""
        if self._future is None:
            self.phase = "starting"
            self._future = submit(self._main())
        return self

    def stop(self) -> None:
        """End the run: the load stops, calls in flight get a second to answer, the
        last events are read. The recording stays (`ended` becomes True)."""
        self._stop.set()
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            loop.call_soon_threadsafe(wake.set)

    @property
    def running(self) -> bool:
        return self.phase in ("starting", "running")

    @property
    def ended(self) -> bool:
        """Finished, stopped or failed: nothing more will be recorded."""
        return self.phase in ("finished", "stopped", "failed")

    @property
    def finished(self) -> bool:
        """The run is over and its recording complete (bounded end or Stop)."""
        return self.phase in ("finished", "stopped")

    def wait(self, timeout: float | None = None) -> LabSession:
        """Block this thread until the run ends (raises TimeoutError after `timeout`)."""
        if self._future is None:
            raise RuntimeError("the session was never started: call start()")
        self._future.result(timeout)
        return self

    async def wait_async(self) -> LabSession:
        """`wait()` for a coroutine on another loop (a notebook cell): the kernel
        keeps serving widgets meanwhile."""
        if self._future is None:
            raise RuntimeError("the session was never started: call start()")
        await asyncio.wrap_future(self._future)
        return self

    def check_expected_states(self) -> dict[str, Any]:
        """After the run: the summary, or an AssertionError if a protected variant
        never visited every state in ``params.expect_states``."""
        if self.error is not None:
            raise RuntimeError(f"the live loop failed: {self.error!r}") from self.error
        summary = self.summary()
        for variant in self.variants:
            if not self.target.protected(variant):
                continue
            seen = set(summary.get(variant, {}).get("states_seen", ()))
            missing = set(self.params.expect_states) - seen
            if missing:
                raise AssertionError(
                    f"{variant}: the breaker never went {sorted(missing)} "
                    f"(saw {sorted(seen)}; autopilot {self.params.autopilot})")
        return summary

    # --- what the view reads (any thread) -------------------------------------------------

    def lab_now(self) -> float:
        """Seconds on the lab's clock (0 until the load started)."""
        return 0.0 if self.started_at is None else time.monotonic() - self.started_at

    def arrays(self) -> dict[str, Any]:
        """The live charts' arrays (`LiveFeed.arrays`)."""
        with self._lock:
            return self.feed.arrays()

    @property
    def x_range(self) -> tuple[float, float]:
        with self._lock:
            return self.feed.x_range

    def summary(self) -> dict[str, Any]:
        """Per variant: calls, success rate, outcomes, current state, states seen, trips
        and failed probes (`cblab.analysis` definitions)."""
        with self._lock:
            out = self.feed.summary()
        for variant in self.variants:
            out.setdefault(variant, {"calls": 0, "states_seen": []})
        return out

    def status(self) -> dict[str, Any]:
        """For the status line: the summary plus calls in flight and a rolling success
        rate (the same 5 s window as the success chart)."""
        summary = self.summary()
        with self._lock:
            recent = self.feed.recent_success(self.feed.success_window_s)
        for variant in self.variants:
            gen = self.generators.get(variant)
            summary[variant]["in_flight"] = gen.in_flight if gen is not None else 0
            summary[variant]["recent_success"] = recent.get(variant)
            summary[variant]["protected"] = self.target.protected(variant)
        return summary

    def events(self, source: str | None = "server") -> pd.DataFrame:
        """The recorded rows as an event frame (lab time), from one source ("server":
        what the breaker decided, "load": what callers saw) or all (None)."""
        with self._lock:
            frame = self.feed.recorded_frame()
        if source is not None:
            frame = frame[frame["source"] == source].reset_index(drop=True)
        return frame

    def config_dict(self) -> dict[str, Any]:
        return self._config_fields(self.config)

    @staticmethod
    def _config_fields(config: CircuitBreakerConfig) -> dict[str, Any]:
        return {n: getattr(config, n) for n in BREAKER_FIELDS}

    # --- controls (any thread) ------------------------------------------------------------

    def set(self, **values: Any) -> None:
        """Move controls, exactly as a person would: ``session.set(error_rate=100)``.

        Unknown controls raise KeyError, out-of-range values ValueError. Breaker
        settings that could never work together are refused here (`note` says why)
        and never sent; the breaker keeps its last valid settings."""
        for name in values:
            if name not in self.values:
                raise KeyError(f"no control {name!r}; this lab has {sorted(self.values)}")
        checked = {name: check_value(name, value) for name, value in values.items()}
        with self._lock:
            for name, value in checked.items():
                self.values[name] = value
                if name == "rate":
                    for gen in self.generators.values():  # thread-safe, no HTTP: at once
                        gen.rate = float(value)
                    self._log_applied(name, value)
                elif name in BREAKER_FIELDS:
                    fields = {n: self.values[n] for n in BREAKER_FIELDS if n in self.values}
                    try:
                        self.config.replace(**fields)
                    except ConfigError as exc:
                        self._say(f"Not applied: {exc}. The breaker keeps its last valid "
                                  "settings.", bad=True)
                        self._pending.pop("breaker", None)
                        continue
                    self._say("applying…")
                    self._pending["breaker"] = (time.monotonic(), fields)
                else:
                    self._pending[name] = (time.monotonic(), value)

    def _say(self, text: str, *, bad: bool = False) -> None:
        self.note = Note(text, bad, self.note.serial + 1)

    def _log_applied(self, name: str, value: Any) -> None:
        self.applied.append((round(self.lab_now(), 3), name, value))
        del self.applied[:-200]

    # --- the run (the lab's loop) ---------------------------------------------------------

    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop, self._wake = loop, asyncio.Event()
        runs: list[asyncio.Task[Any]] = []
        try:
            await self.target.start(self.breaker, self.config_dict())
            await self.target.faults.set_faults(self.service, **self._initial_faults())
            for variant in self.variants:  # a shared server has history: start after it
                reply = await self.target.events(variant, 0, None)
                self._cursors[variant] = int(reply["last_seq"])
            for variant in self.variants:
                self.generators[variant] = self._generator(variant)
            duration = self.params.run_seconds or 10.0**9
            runs = [loop.create_task(g.run(duration=duration)) for g in self.generators.values()]
            await self._connected(runs)
            # The lab's clock (charts, autopilot, run_seconds, the scenario) starts when
            # every generator's MCP client is connected and its first call is due.
            self.started_at = time.monotonic()
            self.started_wall = _utc_iso()
            if self.scenario is not None:
                await self.target.faults.play_scenario(self.scenario.to_dict())
            self.phase = "running"
            await self._run(runs)
            await self._wind_down(runs)
            self.ended_at = self.lab_now()
            self.phase = "stopped" if self._stop.is_set() else "finished"
        except BaseException as exc:
            for run in runs:
                run.cancel()
            if self.started_at is not None:
                self.ended_at = self.lab_now()
            self.error = exc
            self.phase = "failed"
            if not isinstance(exc, Exception):
                raise
        finally:
            with contextlib.suppress(Exception):
                await self.target.stop()

    def _generator(self, variant: str) -> LoadGenerator | ProcessLoad:
        """The variant's load: in a process of its own when the target is a URL (so
        nothing the kernel does shows up as latency), else on this loop."""
        target = self.target.mcp_target(variant)
        options: dict[str, Any] = {
            "rate": float(self.values.get("rate", self.params.rate)), "variant": variant,
            "seed": self.params.seed, "deadline": max(self.deadline * 2.5, 5.0), "window": 2_000,
        }
        if self.arguments is not None:  # any server's tool: its arguments, our breaker
            options["arguments"] = self.arguments
            options["breaker"] = self.breaker
        if self.load_process and isinstance(target, str):
            return ProcessLoad(target, self.tool, **options)
        from ..load import LoadGenerator

        return LoadGenerator(target, self.tool, **options)

    def _initial_faults(self) -> dict[str, Any]:
        """The backend starts where the controls are."""
        return {
            "mode": self.values.get("outage", "up"),
            "error_rate": self.values.get("error_rate", 0) / 100.0,
            "latency": latency_profile(self.values.get("latency_ms", 20.0)),
        }

    async def _connected(self, runs: list[asyncio.Task[Any]], timeout: float = 60.0) -> None:
        """Wait until every generator has opened its MCP client and started its clock."""
        deadline = time.monotonic() + timeout
        while any(g.start_monotonic is None for g in self.generators.values()):
            for run in runs:
                if run.done():
                    run.result()  # raises what stopped it
            if self._stop.is_set():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the load generators did not connect within {timeout:g} s")
            await asyncio.sleep(0.02)

    async def _run(self, runs: list[asyncio.Task[Any]]) -> None:
        assert self._wake is not None
        period = 1.0 / max(self.params.update_hz, _POLL_HZ)
        failures = 0
        while not self._stop.is_set():
            elapsed = self.lab_now()
            self._play_autopilot(elapsed)
            try:
                await self._apply_pending()
                await self._poll()
                failures = 0
            except Exception as exc:  # an HTTP hiccup must not end the lab
                # One bad answer (a keep-alive connection closed under us, a busy
                # server) must not end the lab; a server that stays away does.
                failures += 1
                self.io_errors += 1
                self.last_io_error = f"{type(exc).__name__}: {exc}"
                if failures >= _MAX_IO_FAILURES:
                    raise
            if self.params.run_seconds and elapsed >= self.params.run_seconds:
                return
            for run in runs:
                if run.done() and run.exception() is not None:
                    raise run.exception()  # type: ignore[misc]
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), period)
            self._wake.clear()

    async def _wind_down(self, runs: list[asyncio.Task[Any]]) -> None:
        """Stop the load, give calls in flight a moment, read the last events."""
        for gen in self.generators.values():
            gen.stop()
        if runs:
            grace = 1.0 if self._stop.is_set() else self.deadline * 3
            await asyncio.wait(runs, timeout=grace)
        for run in runs:
            run.cancel()
        if runs:
            await asyncio.wait(runs)
        with contextlib.suppress(Exception):
            await self._apply_pending(force=True)
        await self._poll()

    def _play_autopilot(self, elapsed: float) -> None:
        while self._autopilot and self._autopilot[0].at <= elapsed:
            step = self._autopilot.pop(0)
            if step.control not in self.values:
                # One CBLAB_AUTOPILOT may serve several labs: skip what this one lacks.
                self.autopilot_skipped.append(step)
                continue
            self.set(**{step.control: step.value})

    async def _apply_pending(self, *, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            due = [(k, at, v) for k, (at, v) in self._pending.items()
                   if force or now - at >= _DEBOUNCE_S]
        faults = self.target.faults
        for key, at, value in due:
            if key == "error_rate":
                await faults.patch_faults(self.service, error_rate=value / 100.0)
            elif key == "latency_ms":
                await faults.patch_faults(self.service, latency=latency_profile(value))
            elif key == "outage":
                await faults.patch_faults(self.service, mode=value)
            elif key == "breaker":
                await self._apply_breaker(value)
            with self._lock:
                if self._pending.get(key, (None,))[0] == at:  # not moved again meanwhile
                    del self._pending[key]
                if key != "breaker":
                    self._log_applied(key, value)

    async def _apply_breaker(self, fields: dict[str, Any]) -> None:
        try:
            config = self.config.replace(**fields)
        except ConfigError as exc:
            self._say(f"Not applied: {exc}", bad=True)
            return
        try:
            for variant in self.variants:
                if self.target.protected(variant):
                    await self.target.configure_breaker(variant, self.breaker, **fields)
        except Exception as exc:  # the server's refusal, shown to the person
            detail = getattr(exc, "detail", None) or exc
            self._say(f"Not applied: {detail}", bad=True)
            return
        self.config = config
        shown = ", ".join(f"{k}={v:g}" for k, v in fields.items())
        self._say(f"✓ applied: {shown}")
        self._log_applied("breaker", dict(fields))

    async def _poll(self) -> None:
        assert self.started_at is not None
        for variant in self.variants:
            reply = await self.target.events(variant, self._cursors[variant], 5_000)
            lab_now = self.lab_now()
            # Server rows count from the server's start: estimate the shift once per
            # poll and keep the smallest (the one with the least network delay in it).
            guess = lab_now - float(reply["now"])
            offset = min(self._offsets.get(variant, guess), guess)
            self._offsets[variant] = offset
            self._cursors[variant] = int(reply["last_seq"])
            with self._lock:
                self.feed.missed += int(reply.get("missed") or 0)
                self.feed.add(reply["events"], offset=offset)
        loop = asyncio.get_running_loop()
        for variant, gen in self.generators.items():
            rows, cursor, missed = gen.since(self._cursors.get(f"load:{variant}", 0))
            self._cursors[f"load:{variant}"] = cursor
            if gen.start_monotonic is None:
                continue
            # The generator counts from its own start, on this loop's clock.
            shift = gen.start_monotonic - (self.started_at - time.monotonic() + loop.time())
            with self._lock:
                self.feed.missed += missed
                self.feed.add(rows, offset=shift)
        with self._lock:
            self.feed.advance(self.lab_now())

    def __repr__(self) -> str:
        return f"LabSession(variants={self.variants}, {self.phase})"
