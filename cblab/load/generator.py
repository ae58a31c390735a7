"""An open-loop load generator over real MCP (a fastmcp `Client`).

Arrivals follow a schedule (Poisson or constant rate, from a seeded
`random.Random`), never the previous answer: each request is its own task,
started at its *intended* time, and its latency is measured from that intended
time, so a slow server shows up in the latency instead of silently lowering the
request rate (no coordinated omission). In-flight requests are capped; an arrival
over the cap is recorded as "dropped". Each call has a whole-call deadline
(`asyncio.timeout`); a call that misses it is recorded as "timeout".

Every arrival gets exactly one record, a `cblab.schema` row with
``source="load"``: ``seq`` is the arrival number (1, 2, 3... in intended-time
order), ``t`` the intended start in seconds since the run started, ``latency``
seconds from intended start to the answer, and ``outcome``:

==================================  ===========  ===========================
answer                              outcome      error_type
==================================  ===========  ===========================
tool result                         success      -
isError, breaker refused            rejected     dependency_unavailable
isError, bulkhead full              dropped      local_overload (as the server
                                                 records it; see `cblab.codes`)
other isError with a status         failure      http_<status> (e.g. an injected 500)
other isError with an error code    failure      that code (cut to 64 characters)
other isError (ToolError, ...)      failure      tool_error
exception from the client           failure      its code (see below)
deadline passed                     timeout      deadline_exceeded
over the in-flight cap              dropped      in_flight_cap (latency None)
run cancelled while in flight       cancelled    CancelledError
==================================  ===========  ===========================

An exception's code is the one the breaker integrations record for it
(`cblab.integrations.classify`): a server that went away shows as
``ConnectError`` (refused), ``connection_closed`` (a stdio server's pipes),
``session_terminated`` (it restarted and forgot our session), ``ReadError``...

Servers restart and a load run may be long: each client is held by a
`cblab.integrations.ReconnectingClient`, so after a connection failure the next
call opens a fresh session (a stdio server is respawned) instead of failing on a
dead one for the rest of the run. While the server is down every arrival still
gets its row, a failure with the code above; once it is back, calls succeed
again. `reconnects` counts the fresh sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import threading
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from cblab import EventLog
from cblab.codes import DEADLINE_EXCEEDED, IN_FLIGHT_CAP, LOCAL_OVERLOAD, TOOL_ERROR, Refusal
from cblab.demo import DEMO_ORDER_IDS, DEMO_USERNAMES, TOOL_BREAKERS, demo_arguments
from cblab.integrations.classify import classify_exception
from cblab.schema import EVENT_COLUMNS, event_row

__all__ = ["DEMO_ORDER_IDS", "DEMO_USERNAMES", "LoadGenerator", "demo_arguments"]

Arguments = Mapping[str, Any] | Callable[[random.Random], Mapping[str, Any]] | None


def result_code(content: Any) -> str:
    """What an isError result's structured content says went wrong: an HTTP status
    (``http_503``), an error code (bounded), else ``tool_error``."""
    if isinstance(content, Mapping):
        status = content.get("status")
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            return f"http_{status}"
        error = content.get("error")
        if isinstance(error, str) and error:
            return error[:64]
    return TOOL_ERROR


class LoadGenerator:
    """Open-loop MCP load: `await gen.run(duration=10)`; change `gen.rate` any time.

    `target` is an MCP URL (``http://127.0.0.1:P/mcp``), a fastmcp `Client`, or a
    FastMCP server object (in-process); or a list of them (several replicas of one
    server): calls then go to each in turn (`spread="round_robin"`) or to one drawn
    with the generator's RNG (`spread="random"`), and `per_target` counts them. `arguments` is a dict, a function of the
    generator's `random.Random`, or None for `demo_arguments(tool)`.

    Results: `records()` (a window of the newest `window` rows, or every row with
    `keep_all=True`), `to_frame()`, `counts`, `since(cursor)` for pollers,
    `async for row in gen.stream()` and `on_result=callback(row)` for live use.
    """

    def __init__(
        self,
        target: Any,
        tool: str = "github_user",
        arguments: Arguments = None,
        *,
        rate: float = 10.0,
        arrivals: str = "poisson",
        seed: int | None = 0,
        max_in_flight: int = 64,
        deadline: float = 5.0,
        variant: str | None = None,
        window: int = 10_000,
        keep_all: bool = False,
        on_result: Callable[[dict[str, Any]], Any] | None = None,
        spread: str = "round_robin",
        breaker: str | None = None,
        phase: str | Callable[[float], str | None] | None = None,
    ) -> None:
        if phase is not None and not (callable(phase) or (isinstance(phase, str) and phase)):
            raise ValueError(f"phase must be a label or a function of t, got {phase!r}")
        self.phase = phase
        self.warmup_s = 0.0  # seconds of unrecorded warm-up calls before the run (cblab load)
        if spread not in {"round_robin", "random"}:
            raise ValueError(f"spread must be 'round_robin' or 'random', got {spread!r}")
        if isinstance(target, list | tuple) and not target:
            raise ValueError("target: give at least one MCP URL, client or server")
        if arrivals not in {"poisson", "constant"}:
            raise ValueError(f"arrivals must be 'poisson' or 'constant', got {arrivals!r}")
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int) or max_in_flight < 1:
            raise ValueError(f"max_in_flight must be an integer >= 1, got {max_in_flight!r}")
        if not (isinstance(deadline, int | float) and math.isfinite(deadline) and deadline > 0):
            raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an integer >= 1, got {window!r}")
        self.target = target
        self.targets = list(target) if isinstance(target, list | tuple) else [target]
        self.spread = spread
        self.per_target = [0] * len(self.targets)  # calls issued to each target
        self._next_target = 0
        self.tool = tool
        # the rows' `breaker`: the one the tool's calls go through, if the caller knows it
        self.breaker = breaker if breaker is not None else TOOL_BREAKERS.get(tool)
        if arguments is None:
            arguments = demo_arguments(tool)
        self._arguments = arguments
        self.arrivals = arrivals
        self.rng = random.Random(seed)
        self.max_in_flight = max_in_flight
        self.deadline = float(deadline)
        self.variant = variant
        self.on_result = on_result
        self._rate = self._check_rate(rate)
        self._window: deque[dict[str, Any]] = deque(maxlen=window)
        self._all: list[dict[str, Any]] | None = [] if keep_all else None
        self._log = EventLog(window)  # completion order, for since() and stream()
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self.counts: Counter[str] = Counter()
        self.sent = 0  # arrivals so far (each gets exactly one record)
        self.in_flight = 0
        self.max_seen_in_flight = 0
        self.start_monotonic: float | None = None  # loop time at the run's start
        self._running = False
        self._stopping = False
        self._waiter: asyncio.Future[bool] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.callback_errors = 0
        self._connections: list[Any] = []  # the run's ReconnectingClients

    # --- rate and stop: callable any time, from any thread ------------------------------

    @staticmethod
    def _check_rate(rate: Any) -> float:
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not (
            math.isfinite(rate) and rate >= 0
        ):
            raise ValueError(f"rate must be a number of calls per second >= 0, got {rate!r}")
        return float(rate)

    @property
    def rate(self) -> float:
        """Arrivals per second; 0 pauses. Setting it takes effect at once."""
        return self._rate

    @rate.setter
    def rate(self, value: float) -> None:
        self._rate = self._check_rate(value)
        self._wake()

    def stop(self) -> None:
        """Stop issuing calls; `run()` returns once the calls in flight have ended."""
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            self._resolve_waiter()
        else:
            loop.call_soon_threadsafe(self._resolve_waiter)

    def _resolve_waiter(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    @property
    def running(self) -> bool:
        return self._running

    # --- the run --------------------------------------------------------------------------

    def _gap(self, rate: float) -> float:
        return self.rng.expovariate(rate) if self.arrivals == "poisson" else 1.0 / rate

    async def _sleep_until(self, when: float) -> bool:
        """Sleep until loop time `when`; True if woken early (rate change or stop)."""
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[bool] = loop.create_future()
        self._waiter = waiter
        handle = loop.call_at(when, lambda: None if waiter.done() else waiter.set_result(False))
        try:
            return await waiter
        finally:
            handle.cancel()
            self._waiter = None

    async def run(self, duration: float | None = None, count: int | None = None) -> LoadGenerator:
        """Issue calls until `duration` seconds passed, `count` calls were issued,
        or `stop()`; then wait for the calls in flight. Returns the generator.

        Cancelling `run()` cancels the calls in flight (each recorded "cancelled").
        """
        if duration is None and count is None:
            raise ValueError("give a duration (seconds) or a count, or both; stop() ends early")
        if duration is not None and not (math.isfinite(duration) and duration >= 0):
            raise ValueError(f"duration must be a number of seconds >= 0, got {duration!r}")
        if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
            raise ValueError(f"count must be an integer >= 0, got {count!r}")
        if self._running:
            raise RuntimeError("this generator is already running")
        self._running, self._stopping = True, False
        loop = self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        try:
            async with contextlib.AsyncExitStack() as stack:
                clients = await self._open(stack)
                start = loop.time()
                if self.start_monotonic is None:
                    self.start_monotonic = start
                base = self.start_monotonic
                end = start + duration if duration is not None else math.inf
                limit = self.sent + count if count is not None else None
                try:
                    await self._schedule(clients, loop, start, end, limit, base)
                    if self._tasks:
                        await asyncio.gather(*list(self._tasks), return_exceptions=True)
                except asyncio.CancelledError:
                    for task in list(self._tasks):
                        task.cancel()
                    if self._tasks:
                        await asyncio.gather(*list(self._tasks), return_exceptions=True)
                    raise
        finally:
            self._running = False
            self._loop = None
            for queue in list(self._subscribers):
                queue.put_nowait(None)
        return self

    async def _open(self, stack: contextlib.AsyncExitStack) -> list[Any]:
        from fastmcp import Client

        from cblab.integrations.reconnect import ReconnectingClient

        self._connections = []
        for target in self.targets:
            if not isinstance(target, ReconnectingClient):
                client = target if isinstance(target, Client) else Client(target)
                # A (re)connect may take seconds (a stdio server starting up) but never
                # forever: a server that accepts and never answers must not hold every
                # later call behind one reconnect for the rest of the run.
                target = ReconnectingClient(client, connect_timeout=max(self.deadline, 30.0))
            await stack.enter_async_context(target)
            self._connections.append(target)
        return list(self._connections)

    @property
    def reconnects(self) -> int:
        """Fresh sessions opened after a server went away (all targets, this run)."""
        return sum(connection.reconnects for connection in self._connections)

    def _pick(self, clients: list[Any]) -> Any:
        if len(clients) == 1:
            index = 0
        elif self.spread == "random":
            index = self.rng.randrange(len(clients))
        else:
            index = self._next_target
            self._next_target = (index + 1) % len(clients)
        self.per_target[index] += 1
        return clients[index]

    async def _schedule(self, clients: list[Any], loop: asyncio.AbstractEventLoop, start: float,
                        end: float, limit: int | None, base: float) -> None:
        last = start
        rate = self._rate
        next_at = start + (self._gap(rate) if rate > 0 and self.arrivals == "poisson" else 0.0)
        while not self._stopping and (limit is None or self.sent < limit):
            if self._rate != rate:  # re-plan the next arrival at the new rate
                rate = self._rate
                now = loop.time()
                next_at = max(last + self._gap(rate), now) if rate > 0 else math.inf
            if rate <= 0:
                if end == math.inf:
                    await self._sleep_until(loop.time() + 3600.0)
                else:
                    await self._sleep_until(end)
                if loop.time() >= end:
                    return
                continue
            if next_at >= end:
                # Sleep out the run's end unless a rate change or stop comes first.
                if not await self._sleep_until(end):
                    return
                continue
            if next_at > loop.time() and await self._sleep_until(next_at):
                continue  # woken early: rate changed or stop()
            self._issue(clients, next_at, next_at - base)
            last = next_at
            next_at += self._gap(rate)

    def _issue(self, clients: list[Any], intended: float, t: float) -> None:
        self.sent += 1
        seq = self.sent
        if self.in_flight >= self.max_in_flight:
            self._finish(seq, t, "dropped", None, IN_FLIGHT_CAP)
            return
        client = self._pick(clients)
        arguments = self._arguments
        args = dict(arguments(self.rng) if callable(arguments) else arguments)
        self.in_flight += 1
        self.max_seen_in_flight = max(self.max_seen_in_flight, self.in_flight)
        task = asyncio.get_running_loop().create_task(self._call(client, seq, intended, t, args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _call(self, client: Any, seq: int, intended: float, t: float,
                    args: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        outcome, error_type, breaker = "success", None, None
        try:
            async with asyncio.timeout(self.deadline):
                result = await client.call_tool_mcp(self.tool, args)
            if result.is_error:
                refusal = Refusal.parse(result.structured_content)
                if refusal is not None:
                    outcome = "dropped" if refusal.error == LOCAL_OVERLOAD else "rejected"
                    error_type = refusal.error
                    breaker = refusal.breaker or None
                else:
                    outcome, error_type = "failure", result_code(result.structured_content)
        except TimeoutError:
            outcome, error_type = "timeout", DEADLINE_EXCEEDED
        except asyncio.CancelledError:
            outcome, error_type = "cancelled", "CancelledError"
            raise
        except Exception as exc:
            outcome, error_type = "failure", _code(exc)
        finally:
            self.in_flight -= 1
            self._finish(seq, t, outcome, loop.time() - intended, error_type, breaker)

    def _finish(self, seq: int, t: float, outcome: str, latency: float | None,
                error_type: str | None, breaker: str | None = None) -> None:
        phase = self.phase(t) if callable(self.phase) else self.phase
        row = event_row(
            seq=seq, kind="call", t=t, source="load", variant=self.variant,
            breaker=breaker or self.breaker, tool=self.tool, outcome=outcome, latency=latency,
            error_type=error_type, phase=phase,
        )
        self.counts[outcome] += 1
        self._window.append(row)
        if self._all is not None:
            self._all.append(row)
        self._log.append(row)  # the log stores any object
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow consumer loses the oldest, never blocks us
            queue.put_nowait(row)
        if self.on_result is not None:
            try:
                self.on_result(row)
            except Exception:  # a broken callback must not lose records
                self.callback_errors += 1

    # --- results -----------------------------------------------------------------------

    @property
    def completed(self) -> int:
        return sum(self.counts.values())

    def records(self) -> list[dict[str, Any]]:
        """Every row (`keep_all=True`) or the newest `window` rows, in completion order."""
        return list(self._all if self._all is not None else self._window)

    def since(self, cursor: int = 0) -> tuple[list[dict[str, Any]], int, int]:
        """Rows completed after `cursor`: `(rows, new_cursor, missed)` for pollers."""
        part = self._log.since(cursor)
        return [row for _, row in part.events], part.last_seq, part.missed  # type: ignore[misc]

    async def stream(self, maxsize: int = 10_000) -> AsyncIterator[dict[str, Any]]:
        """Rows as they complete, until the run ends. A consumer that falls more than
        `maxsize` rows behind loses the oldest ones (memory stays bounded)."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        try:
            while True:
                row = await queue.get()
                if row is None:
                    return
                yield row
        finally:
            self._subscribers.discard(queue)

    def to_frame(self) -> Any:
        """The rows as a pandas DataFrame with `cblab.schema.EVENT_COLUMNS`, by `seq`."""
        import pandas as pd

        frame = pd.DataFrame(self.records(), columns=list(EVENT_COLUMNS))
        return frame.sort_values("seq", kind="stable").reset_index(drop=True)

    def summary(self) -> dict[str, Any]:
        """Counts by outcome and latency percentiles (seconds) of answered calls."""
        latencies = sorted(
            r["latency"] for r in self.records() if r["latency"] is not None
            and r["outcome"] in {"success", "rejected", "failure"}
        )

        def pct(q: float) -> float | None:
            if not latencies:
                return None
            return latencies[min(int(q * len(latencies)), len(latencies) - 1)]

        return {"sent": self.sent, "completed": self.completed, "counts": dict(self.counts),
                "p50": pct(0.50), "p99": pct(0.99), "max_in_flight": self.max_seen_in_flight}

def _code(exc: Exception) -> str:
    """An exception's error code, as the breaker integrations record it."""
    return classify_exception(exc).error_type or type(exc).__name__
