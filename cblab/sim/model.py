"""The simulated system: arrivals -> the real `CircuitBreaker` -> a modelled backend service.

It plays the live stack's parts on virtual time:

- the demo server's `fetch_json` (cblab/server/tools.py): `admit()`, one backend
  request under a whole-call deadline, `record()` with the same error codes
  (`http_503`, `deadline_exceeded`, `ConnectError`, ...);
- the backend service (cblab/backend/service.py): every request that reaches it
  is decided by `plan_request(profile, rng_for(seed, service))`, before the
  capacity check, so the decisions are the live backend's for the same order of
  requests. While the service is down nothing reaches it (connection refused,
  no RNG draws). Capacity: a slot is held from the start of service until the
  planned latency has elapsed, even if the client gave up meanwhile (the live
  handler sleeps on); a hung request holds its slot until the client closes
  (its deadline), the service leaves "hang" (answered at once, like a healthy
  request) or goes down. Going down resets every request the service holds,
  queued ones included. Overflow is a 503 (`reject`) or a FIFO wait (`queue`).

Calls overlap in time: each admitted call completes at its own time, so
half-open trials, trial timeouts and late outcomes happen as they do live. A
call that completes before anything else is due (the common case) is finished
inline by `Engine.jump`, without touching the heap; the rest go through it.

Rows are kept as compact tuples (`ROW_FIELDS`) and become schema rows or a
DataFrame only when asked for (see `cblab.sim.run.SimRun`).
"""

from __future__ import annotations

import array
import itertools
import math
import random
from collections import deque
from typing import Any

from cblab import CircuitBreaker, CircuitBreakerConfig, CircuitState, EventLog, Outcome, StateChange
from cblab.codes import (
    CONNECT_ERROR,
    DEADLINE_EXCEEDED,
    DEPENDENCY_UNAVAILABLE,
    READ_ERROR,
    http_error,
)
from cblab.demo import SERVICE_ROUTES
from cblab.faults.profile import DRAWS_PER_REQUEST, FaultProfile, plan_request, rng_for
from cblab.faults.scenario import Scenario
from cblab.schema import COMPACT_ROW_FIELDS

from .engine import Engine
from .workload import LoadPhase, arrival_rng, arrival_times

__all__ = [
    "PLAN_CHUNK",
    "Draws",
    "ERROR_DEADLINE",
    "ERROR_REFUSED",
    "ERROR_REJECTED",
    "ERROR_RESET",
    "FAST_FAIL_S",
    "ROW_FIELDS",
    "Simulation",
]

#: How long a refused connection or a capacity 503 takes on loopback.
FAST_FAIL_S = 0.0005

# error_type codes, as the demo server records them (cblab.codes)
ERROR_REFUSED = CONNECT_ERROR  # httpx.ConnectError: the service is down
ERROR_RESET = READ_ERROR  # connection reset mid-answer (a "reset" fault, or going down)
ERROR_DEADLINE = DEADLINE_EXCEEDED  # no answer within the whole-call deadline
ERROR_REJECTED = DEPENDENCY_UNAVAILABLE  # the breaker refused the call
_HTTP_ERROR = {status: http_error(status) for status in (429, 500, 502, 503, 504)}

#: Layout of the compact row tuples in `Simulation.rows` (see `cblab.schema.CompactRun`).
ROW_FIELDS = COMPACT_ROW_FIELDS

CLOSED, OPEN = CircuitState.CLOSED, CircuitState.OPEN
SUCCESS, FAILURE, REJECTED = Outcome.SUCCESS, Outcome.FAILURE, Outcome.REJECTED
_INF = math.inf

#: Events `_sync` reads back from the breaker's log (it checks that none was missed).
_RECENT_EVENTS = 6

# where a call's backend request is
_NONE, _QUEUED, _SERVING = 0, 1, 2


class _Call:
    """A call that needs the heap: it waits, hangs, or outlives the next event."""

    __slots__ = ("permit", "t", "kind", "latency", "error", "waiting", "backend")

    def __init__(self, permit: Any, t: float, kind: str, latency: float, error: str | None) -> None:
        self.permit = permit
        self.t = t
        self.kind = kind  # the plan: ok, error, reset or hang
        self.latency = latency
        self.error = error  # error_type if the backend's answer is a failure
        self.waiting = True  # the client still waits for an answer
        self.backend = _NONE


#: Backend plans computed at a time, per profile, when a run needs one of them.
PLAN_CHUNK = 256

#: A backend plan as the main loop reads it: (kind, latency_s, outcome, error_type).
Plan = tuple[str, float, Outcome, str | None]


class Draws:
    """What a run draws from its seed, whatever its breaker does: the arrival times,
    and the backend's plan for its k-th request under each fault profile.

    The backend draws exactly `DRAWS_PER_REQUEST` numbers per request whatever the
    profile (`cblab.faults.profile`), so request k gets draws 5k..5k+4 of
    `rng_for(seed, service)` in every run of the seed; only the profile in force
    when it arrives differs between runs. So plan k of a profile is
    `plan_request(profile, rng)` with `rng` where the stream stands after k
    requests: exactly what the single stream gives request k under that profile.
    Plans are computed a chunk of `PLAN_CHUNK` requests at a time, as runs ask for
    them, from the stream's state saved at the chunk's start.

    Runs of one scenario, seed and load that differ only in breaker settings can
    share one `Draws` (a sweep does): each then pays for arrivals and plans once.
    """

    def __init__(self, scenario: Scenario, phases: list[LoadPhase], *, seed: int | str,
                 service: str) -> None:
        self.seed, self.service = seed, service
        self.phases = list(phases)
        self.profiles = [phase.profile(service) for phase in scenario.phases]
        self.arrivals = list(arrival_times(phases, arrival_rng(seed)))
        self._stream = rng_for(seed, service)
        self._rng = random.Random()  # set to a chunk's start before computing it
        self._starts: list[Any] = []  # the stream's state at the start of chunk c
        # one plan list per distinct profile: plan k, or None while its chunk is not needed
        self._sources: list[tuple[FaultProfile, list[Plan | None]]] = []
        self.phase_plans: list[list[Plan | None]] = []  # phase index -> its profile's plans
        for profile in self.profiles:
            source = next((s for s in self._sources if s[0] == profile), None)
            if source is None:
                source = (profile, [])
                self._sources.append(source)
            self.phase_plans.append(source[1])

    def matches(self, scenario: Scenario, phases: list[LoadPhase], seed: int | str,
                service: str) -> bool:
        """Whether these are the draws of a run of `scenario` with this load and seed."""
        return (seed == self.seed and type(seed) is type(self.seed) and service == self.service
                and list(phases) == self.phases
                and [phase.profile(service) for phase in scenario.phases] == self.profiles)

    def plan(self, plans: list[Plan | None], k: int) -> Plan:
        """Plan `k` of the profile whose plan list is `plans` (computing its chunk)."""
        profile = next(s[0] for s in self._sources if s[1] is plans)
        chunk = k // PLAN_CHUNK
        first = chunk * PLAN_CHUNK
        if len(plans) < first + PLAN_CHUNK:
            plans.extend([None] * (first + PLAN_CHUNK - len(plans)))
        rng = self._rng
        rng.setstate(self._start(chunk))
        for i in range(first, first + PLAN_CHUNK):
            plan = plan_request(profile, rng)
            kind = plan.kind
            plans[i] = (kind, plan.latency_s, SUCCESS if kind == "ok" else FAILURE,
                        _plan_error(plan))
        return plans[k]  # type: ignore[return-value]  # just computed

    def _start(self, chunk: int) -> Any:
        """The backend stream's state after `chunk` x `PLAN_CHUNK` requests."""
        starts, stream = self._starts, self._stream
        draw = stream.random
        while len(starts) <= chunk:
            if starts:
                for _ in range(PLAN_CHUNK * DRAWS_PER_REQUEST):
                    draw()
            version, words, gauss = stream.getstate()
            # 625 32-bit words: 2.5 kB as an array, ~20 kB as a tuple of ints (a run of
            # a million calls keeps ~4,000 of these)
            starts.append((version, array.array("I", words), gauss))
        version, words, gauss = starts[chunk]
        return version, tuple(words), gauss


class Simulation:
    """One run: build it, call `run()` once, read `rows`."""

    def __init__(
        self,
        scenario: Scenario,
        phases: list[LoadPhase],
        config: CircuitBreakerConfig,
        *,
        seed: int | str,
        deadline_s: float,
        protected: bool = True,
        service: str = "users",
        draws: Draws | None = None,
    ) -> None:
        if service not in SERVICE_ROUTES:
            raise ValueError(f"unknown service {service!r}; services: {', '.join(SERVICE_ROUTES)}")
        if isinstance(deadline_s, bool) or not isinstance(deadline_s, (int, float)) or not (
            math.isfinite(deadline_s) and deadline_s > 0
        ):
            raise ValueError(f"deadline_s must be a finite number of seconds > 0, got {deadline_s!r}")
        self.scenario = scenario
        self.phases = phases
        self.service = service
        self.breaker_name, self.tool = SERVICE_ROUTES[service]
        self.deadline = float(deadline_s)
        self.env = env = Engine()
        self.breaker = CircuitBreaker(self.breaker_name, config, clock=env, event_log=EventLog(16))
        if not protected:
            self.breaker.disable("unprotected run")
        self.rows: list[tuple[Any, ...]] = []
        self._gen = self.breaker.generation
        self._state = CLOSED  # the breaker's state as of the last row
        if draws is None:
            draws = Draws(scenario, phases, seed=seed, service=service)
        elif not draws.matches(scenario, phases, seed, service):
            raise ValueError("draws were made for another scenario, load, seed or service")
        self.draws = draws
        self._arrivals = iter(draws.arrivals)
        self._plans = draws.phase_plans[0]  # the plans of the profile in force
        self._rng = rng_for(seed, service)  # for subclasses that draw plans themselves
        self._profiles = [phase.profile(service) for phase in scenario.phases]
        self._profile: FaultProfile = self._profiles[0]
        self._limit = self._profile.max_concurrency
        self._busy = 0  # backend slots held
        self._queue: deque[_Call] = deque()  # waiting for a slot, FIFO
        self._serving: dict[_Call, None] = {}  # heap calls holding a slot (ordered)
        self.calls = 0
        for index, phase in enumerate(phases[1:], start=1):
            env.schedule_at(phase.start, self._enter_phase, index)
        self._ran = False

    # --- the main loop ------------------------------------------------------------------

    def run(self) -> list[tuple[Any, ...]]:
        if self._ran:
            raise RuntimeError("a Simulation runs once")
        self._ran = True
        env, breaker = self.env, self.breaker
        run_until, schedule_at = env.run, env.schedule_at
        # The engine's queue, read here to skip calling into the engine when nothing
        # is due: then moving time is one assignment (what `run`/`jump` would do).
        queue = env._queue
        # Without slots to count or connections to reset, nothing that happens while
        # a call is in flight can change how its backend request ends: finishing it
        # inline after running what is due first (`advance`) is exact, and a plain
        # scheduled `_finish` needs no bookkeeping. Otherwise only a call that
        # nothing else precedes is finished inline (`jump`).
        simple = self._untracked()
        finish_inline = env.advance if simple else env.jump
        admit, record = breaker.admit, breaker.record
        rows_append = self.rows.append
        deadline = self.deadline
        finish, start, on_deadline = self._finish, self._start, self._on_deadline
        more_plans = self.draws.plan
        http_503 = _HTTP_ERROR[503]
        arrivals = self._arrivals
        calls = 0
        k = 0  # backend requests so far: the next one gets plan k of its profile
        t = next(arrivals, _INF)
        while t < _INF:
            later = next(arrivals, _INF)
            if queue and queue[0][0] <= t:
                run_until(t)
            else:
                env._now = t
            calls += 1
            permit = admit()
            if breaker.generation != self._gen:
                self._sync(False)
            if not permit.admitted:
                rows_append(("call", t, 0.0, REJECTED, permit.state, self._state, ERROR_REJECTED,
                             None, self._gen))
                t = later
                continue
            profile = self._profile
            if profile.mode == "down":  # refused: never reaches the service, no draws
                self._answer(t + FAST_FAIL_S, later, permit, t, FAILURE, ERROR_REFUSED)
                t = later
                continue
            plans = self._plans
            plan = plans[k] if k < len(plans) else None
            kind, latency, outcome, error = plan or more_plans(plans, k)
            k += 1
            if not simple:
                limit = self._limit
                if self._queue or (limit is not None and self._busy >= limit):
                    if profile.overflow == "reject":
                        self._answer(t + FAST_FAIL_S, later, permit, t, FAILURE, http_503)
                    else:
                        call = _Call(permit, t, kind, latency, error)
                        call.backend = _QUEUED
                        self._queue.append(call)
                        schedule_at(t + deadline, on_deadline, call)
                    t = later
                    continue
            if latency <= deadline:  # answered in time (a hang's latency is inf)
                end = t + latency
                if end <= later and ((not queue or queue[0][0] > end) or finish_inline(end)):
                    env._now = end  # (what finish_inline does when nothing is due)
                    outcome = record(permit, outcome, error_type=error)
                    if breaker.generation != self._gen or self._state is OPEN:
                        self._sync(True)
                    rows_append(("call", t, end - t, outcome, permit.state, self._state, error,
                                 None, permit.generation))
                elif simple:
                    schedule_at(end, finish, permit, t, outcome, error)
                else:
                    start(_Call(permit, t, kind, latency, error))
            elif simple and kind != "hang":  # too slow: the client gives up at its deadline
                schedule_at(t + deadline, finish, permit, t, FAILURE, ERROR_DEADLINE)
            else:
                call = _Call(permit, t, kind, latency, error)
                start(call)
                schedule_at(t + deadline, on_deadline, call)
            t = later
        self.calls = calls
        total = self.scenario.total_duration_s
        if env.now < total:
            run_until(total)
        self._sync(True)  # an OPEN whose wait ended before the end turns HALF_OPEN
        env.run()  # calls still in flight complete
        return self.rows

    def _untracked(self) -> bool:
        """True when no phase limits capacity and the service never goes down mid-run."""
        profiles = self._profiles
        if any(p.max_concurrency is not None for p in profiles):
            return False
        return not any(
            new.mode == "down" and old.mode != "down"
            for old, new in itertools.pairwise(profiles)
        )

    # --- finishing calls -----------------------------------------------------------------------

    def _answer(self, end: float, later: float, permit: Any, t: float, outcome: Outcome,
                error: str | None) -> None:
        """A call that holds no backend slot ends at `end` (refused, or 503 at capacity)."""
        if end <= later and self.env.jump(end):
            self._finish(permit, t, outcome, error)
        else:
            self.env.schedule_at(end, self._finish, permit, t, outcome, error)

    def _finish(self, permit: Any, t: float, outcome: Outcome, error: str | None) -> None:
        """The client gets its answer now: record it and log the call's row."""
        breaker = self.breaker
        recorded = breaker.record(permit, outcome, error_type=error)
        if breaker.generation != self._gen or self._state is OPEN:
            self._sync(True)
        self.rows.append(("call", t, self.env.now - t, recorded, permit.state, self._state, error,
                          None, permit.generation))

    def _sync(self, read_state: bool) -> None:
        """Log the breaker's state changes since the last row (in order)."""
        breaker = self.breaker
        if read_state and self._state is OPEN:
            breaker.state  # noqa: B018  # as the server reads it: a due OPEN -> HALF_OPEN now
        generation = breaker.generation
        if generation == self._gen:
            return
        seen = self._gen
        append = self.rows.append
        found = 0
        # Every admit and record is followed by a sync, and one of them logs at most a
        # few events (a call, and up to two state changes): the newest few hold them.
        log = breaker.event_log
        for _, event in log.since(max(log.last_seq - _RECENT_EVENTS, 0)).events:
            if event.__class__ is StateChange and event.generation > seen:
                append(("state", event.at, None, None, event.from_state, event.to_state, None,
                        event.reason, event.generation))
                self._state = event.to_state
                found += 1
        if found != generation - seen:
            raise RuntimeError(f"lost breaker state changes: saw {found} of {generation - seen}")
        self._gen = generation

    # --- the backend service ------------------------------------------------------------------

    def _start(self, call: _Call) -> None:
        """The service starts on `call`: take a slot, then answer, or hang."""
        call.backend = _SERVING
        self._busy += 1
        self._serving[call] = None
        if call.kind == "hang":
            if not call.waiting:  # its client already closed the connection
                self._release(call)
            return  # the client's deadline (already scheduled) ends it
        self.env.schedule(call.latency, self._on_answer, call)

    def _on_answer(self, call: _Call) -> None:
        if call.backend != _SERVING:
            return  # reset meanwhile (the service went down)
        self._release(call)
        if call.waiting:
            call.waiting = False
            error = call.error
            self._finish(call.permit, call.t, FAILURE if error else SUCCESS, error)

    def _on_deadline(self, call: _Call) -> None:
        if call.waiting:
            call.waiting = False
            self._finish(call.permit, call.t, FAILURE, ERROR_DEADLINE)
        if call.backend == _SERVING and call.kind == "hang":
            self._release(call)  # a hung request ends when its client closes
        # a queued request stays queued; a sleeping one sleeps on (the live handler does)

    def _release(self, call: _Call) -> None:
        call.backend = _NONE
        del self._serving[call]
        self._busy -= 1
        self._wake()

    def _wake(self) -> None:
        queue, limit = self._queue, self._limit
        while queue and (limit is None or self._busy < limit):
            self._start(queue.popleft())

    def _enter_phase(self, index: int) -> None:
        old, new = self._profile, self._profiles[index]
        self._profile = new
        self._plans = self.draws.phase_plans[index]
        self._limit = new.max_concurrency
        if new.mode == "down" and old.mode != "down":
            # the listener closes and every open connection is reset, queued ones too
            held = [*self._serving, *self._queue]
            self._serving.clear()
            self._queue.clear()
            self._busy = 0
            for call in held:
                call.backend = _NONE
                if call.waiting:
                    call.waiting = False
                    self._finish(call.permit, call.t, FAILURE, ERROR_RESET)
        elif old.mode == "hang" and new.mode != "hang":
            # hung requests are answered at once, like a healthy request
            for call in [c for c in self._serving if c.kind == "hang"]:
                self._release(call)
                if call.waiting:
                    call.waiting = False
                    self._finish(call.permit, call.t, SUCCESS, None)
        self._wake()  # the limit may have grown


def _plan_error(plan: Any) -> str | None:
    kind = plan.kind
    if kind == "error":
        return _HTTP_ERROR.get(plan.status, http_error(plan.status))
    if kind == "reset":
        return ERROR_RESET
    return None
