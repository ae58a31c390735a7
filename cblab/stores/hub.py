"""The shared breaker state in process memory: the Lua scripts' semantics in Python.

`SharedHub` is what one Redis server is to many replicas, for the simulator
(many replicas on one virtual clock) and for tests: every operation is atomic
(it runs to completion before the next), takes time from the hub's one clock,
and returns the same `Reply` the Redis scripts return. A differential test runs
the same operations through both and compares the replies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .._config import CircuitBreakerConfig
from .scripts import Move, Reply, Snapshot, config_args

__all__ = ["SharedHub"]


@dataclass
class _Shared:
    state: str = "closed"
    mode: str = "normal"
    gen: int = 0
    opened_at: int = 0
    open_for: int = 0
    trips: int = 0
    count: int = 0
    trial_ok: int = 0
    serial: int = 0
    trips_total: int = 0
    trial_timeouts: int = 0
    changed_at: int = 0
    reason: str = "created"
    trials: dict[int, int] = field(default_factory=dict)  # serial -> admitted at (us)
    window: Any = None  # a window policy's shared counts: str (count) or dict (time)


class _Op:
    """One operation on one breaker's shared record (mirrors prelude.lua/epilogue.lua)."""

    def __init__(self, hub: SharedHub, name: str, config: CircuitBreakerConfig) -> None:
        args = config_args(config)
        (self.failure_threshold, self.success_threshold, self.half_open_max, self.timeout,
         backoff, self.max_timeout, self.trial_limit, self.policy) = args
        self.backoff = float(backoff)
        self.hub, self.name = hub, name
        self.s = hub._records.setdefault(name, _Shared())
        self.now = hub.now_us()
        self.moves: list[Move] = []
        self.announce = False

    def open_duration(self, trips: int) -> int:
        d = self.timeout * self.backoff ** (max(trips, 1) - 1)
        if self.max_timeout > 0 and d > self.max_timeout:
            d = self.max_timeout
        return math.floor(d)

    def move(self, to: str, at: int, reason: str, manual: bool) -> None:
        s = self.s
        came_from = s.state
        s.state, s.gen, s.trial_ok = to, s.gen + 1, 0
        s.changed_at, s.reason = at, reason
        s.trials.clear()
        if to == "open":
            if not manual:
                s.trips += 1
                s.trips_total += 1
            s.opened_at, s.open_for = at, self.open_duration(s.trips)
        elif to == "closed":
            s.trips = s.count = 0
        s.window = None  # a shared window starts afresh
        self.announce = True
        self.moves.append(Move(came_from, to, at, reason, s.gen))

    def trip_reason(self) -> str:
        if self.policy == "cumulative":
            return f"{self.s.count} failures since the breaker closed"
        return f"{self.s.count} consecutive failures"

    def reply(self, result: str, extra: int) -> Reply:
        s = self.s
        snapshot = Snapshot(s.state, s.mode, s.gen, s.count, s.opened_at, s.open_for, self.now,
                            len(s.trials), s.trial_ok, s.trips, s.trips_total,
                            s.trial_timeouts, s.changed_at, s.reason)
        if self.announce:
            self.hub._publish(self.name, snapshot, tuple(self.moves))
        return Reply(result, int(extra), snapshot, tuple(self.moves))


class SharedHub:
    """Shared breaker records for many replicas in one process.

    `clock` is the hub's time in seconds (the simulator's virtual clock): the
    one clock every replica agrees on, as Redis's TIME is. Subscribers get
    `(name, snapshot, moves)` after every announced change, `delay` seconds later
    when a `schedule(delay, fn)` is given (the simulator's pub/sub delay).
    """

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self._records: dict[str, _Shared] = {}
        self._subscribers: list[Callable[[str, Snapshot, tuple[Move, ...]], Any]] = []
        self.operations = 0  # like round trips: one per operation

    def now_us(self) -> int:
        return round(self.clock() * 1_000_000)

    def subscribe(self, callback: Callable[[str, Snapshot, tuple[Move, ...]], Any]) -> None:
        self._subscribers.append(callback)

    def _publish(self, name: str, snapshot: Snapshot, moves: tuple[Move, ...]) -> None:
        for callback in list(self._subscribers):
            callback(name, snapshot, moves)

    # --- the operations (admit.lua, record.lua, control.lua) -------------------------------

    def admit(self, name: str, config: CircuitBreakerConfig) -> Reply:
        self.operations += 1
        op = _Op(self, name, config)
        s, now = op.s, op.now
        if s.mode == "forced_open":
            return op.reply("rejected", -1)
        if s.mode != "normal" or s.state == "closed":
            return op.reply("admitted", 0)
        if s.state == "open":
            due = s.opened_at + s.open_for
            if now < due:
                return op.reply("rejected", due - now)
            op.move("half_open", due, "open timeout elapsed", False)
        oldest = min(s.trials.values()) if s.trials else None
        if oldest is not None and oldest + op.trial_limit <= now:
            s.trial_timeouts += 1
            op.move("open", now, "trial call exceeded max_trial_duration", False)
            return op.reply("rejected", s.open_for)
        if s.trial_ok + len(s.trials) >= op.half_open_max:
            return op.reply("rejected", max(oldest + op.trial_limit - now, 0) if oldest else 0)
        s.serial += 1
        s.trials[s.serial] = now
        return op.reply("admitted", s.serial)

    def record(self, name: str, config: CircuitBreakerConfig, outcome: str, generation: int,
               trial: int, reason: str = "") -> Reply:
        self.operations += 1
        op = _Op(self, name, config)
        s = op.s
        if generation != s.gen:
            return op.reply("late", 0)
        if trial > 0:
            if s.trials.pop(trial, None) is None:
                return op.reply("late", 0)
            if outcome == "failure":
                op.move("open", op.now, "trial call failed", False)
                return op.reply("tripped", 0)
            if outcome == "success":
                s.trial_ok += 1
                if s.trial_ok >= op.success_threshold:
                    op.move("closed", op.now, "trial calls succeeded", False)
                    return op.reply("closed", 0)
            return op.reply("counted", 0)
        if outcome == "failure":
            s.count += 1
            if s.count == 1:
                op.announce = True
            if s.count >= op.failure_threshold and s.mode == "normal" and s.state == "closed":
                op.move("open", op.now, op.trip_reason(), False)
                return op.reply("tripped", 0)
        elif outcome == "success" and op.policy == "consecutive" and s.count > 0:
            s.count = 0
            op.announce = True
        return op.reply("counted", 0)

    def window(self, name: str, config: CircuitBreakerConfig, generation: int, kind: str,
               calls: int, failures: int, slow: int, outcomes: str, length: int,
               bucket_len: int, minimum: int, rate_limit: str, slow_limit: str) -> Reply:
        """A window policy's batch (window.lua)."""
        self.operations += 1
        op = _Op(self, name, config)
        s = op.s
        if generation != s.gen or s.state != "closed":
            return op.reply("late", 0)
        if kind == "count":
            seq = ((s.window or "") + outcomes)[-length:]
            s.window = seq
            total = len(seq)
            failed = sum(c in "fx" for c in seq)
            slowed = sum(c in "sx" for c in seq)
        else:
            bucket = math.floor(op.now / bucket_len)
            oldest = bucket - math.floor(length / bucket_len + 0.5) + 1
            counts: dict[int, list[int]] = s.window if isinstance(s.window, dict) else {}
            row = counts.setdefault(bucket, [0, 0, 0])
            row[0] += calls
            row[1] += failures
            row[2] += slow
            for b in [b for b in counts if b < oldest]:
                del counts[b]
            s.window = counts
            total = sum(r[0] for r in counts.values())
            failed = sum(r[1] for r in counts.values())
            slowed = sum(r[2] for r in counts.values())
        result = "counted"
        rate, slow_rate = float(rate_limit), float(slow_limit)
        if s.mode == "normal" and total >= minimum and total > 0:
            reason = None
            if failed >= rate * total:
                reason = (f"failure rate {math.floor(failed / total * 100 + 0.5)}% reached "
                          f"{math.floor(rate * 100 + 0.5)}%")
            elif slow_rate >= 0 and slowed >= slow_rate * total:
                reason = (f"slow-call rate {math.floor(slowed / total * 100 + 0.5)}% reached "
                          f"{math.floor(slow_rate * 100 + 0.5)}%")
            if reason is not None:
                op.move("open", op.now, reason, False)
                result = "tripped"
        return op.reply(result, total * 1_000_000 + failed)

    def control(self, name: str, config: CircuitBreakerConfig, action: str,
                reason: str = "", *restore: Any) -> Reply:
        self.operations += 1
        op = _Op(self, name, config)
        s = op.s
        if action == "restore":  # (generation, state, mode, trips, opened_at, open_for)
            gen, state, mode, trips, opened_at, open_for = restore
            if int(gen) > s.gen:
                s.gen, s.state, s.mode, s.trips = int(gen), str(state), str(mode), int(trips)
                s.opened_at, s.open_for = int(opened_at), int(open_for)
                s.trial_ok = s.count = 0
                s.changed_at, s.reason = op.now, reason
                s.trials.clear()
                s.window = None
                op.announce = True
            return op.reply("ok", 0)
        if action == "force_open":
            s.mode = "forced_open"
            op.move("open", op.now, reason, True)
        elif action in ("force_closed", "disable"):
            s.mode = "forced_closed" if action == "force_closed" else "disabled"
            op.move("closed", op.now, reason, True)
        elif action == "reset":
            s.mode, s.trips = "normal", 0
            op.move("closed", op.now, reason, True)
        elif action == "reconfigure":
            s.count = 0
            s.window = None
            if s.state == "open" and s.mode == "normal":
                s.open_for = op.open_duration(s.trips)
            op.announce = True
        elif action != "read":
            raise ValueError(f"unknown control action {action!r}")
        return op.reply("ok", 0)


class HubStore:
    """One replica's store over a `SharedHub` (a `cblab._store.BreakerStore`).

    Operations reach the hub at once (no network); what other replicas did
    reaches this one `delay` seconds after it happened, through `schedule(delay,
    fn)` (the simulator's engine), or at once when `delay` is 0. Set `available`
    False to model a lost connection: the replica runs on local state.
    """

    shared = True
    immediate = True
    client_time = True  # the hub's clock is every replica's clock

    def __init__(self, hub: SharedHub, *, replica: str = "replica", delay: float = 0.0,
                 schedule: Callable[[float, Callable[..., Any]], Any] | None = None) -> None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not (
            math.isfinite(delay) and delay >= 0
        ):
            raise ValueError(f"delay must be a number of seconds >= 0, got {delay!r}")
        if delay > 0 and schedule is None:
            raise ValueError("a pub/sub delay needs schedule(delay, fn), e.g. an Engine's")
        self.hub = hub
        self.replica = replica
        self.delay = float(delay)
        self._schedule = schedule
        self.available = True
        self.round_trips = 0
        self._records: dict[str, list[Any]] = {}
        hub.subscribe(self._announced)

    def attach(self, name: str, config: CircuitBreakerConfig, now: float,
               on_change: Callable[[Any], None]) -> Any:
        from .record import SharedRecord

        siblings = self._records.setdefault(name, [])
        record = SharedRecord(self, name, config, now, on_change,
                              siblings[-1] if siblings else None)
        siblings.append(record)
        return record

    def usable(self) -> bool:
        return self.available

    def send(self, name: str, config: CircuitBreakerConfig, op: str, extra: list[Any],
             now: float, done: Callable[[Reply | None], None] | None) -> Reply | None:
        if not self.available:
            return None
        self.round_trips += 1
        hub = self.hub
        if op == "admit":
            return hub.admit(name, config)
        if op == "record":
            outcome, generation, trial, reason = extra
            return hub.record(name, config, outcome, generation, trial, reason)
        if op == "window":
            return hub.window(name, config, *extra)
        action, reason, *restore = extra
        return hub.control(name, config, action, reason, *restore)

    async def call(self, name: str, config: CircuitBreakerConfig, op: str,
                   extra: list[Any], now: float) -> Reply | None:
        return self.send(name, config, op, extra, now, None)

    async def drain(self) -> None:
        return None

    def _announced(self, name: str, snapshot: Snapshot, moves: tuple[Move, ...]) -> None:
        records = self._records.get(name)
        if not records or not self.available:
            return
        if self.delay == 0:
            self._deliver(name, snapshot)
        else:
            assert self._schedule is not None
            self._schedule(self.delay, lambda: self._deliver(name, snapshot))

    def _deliver(self, name: str, snapshot: Snapshot) -> None:
        if not self.available:
            return
        for record in self._records.get(name, ()):
            record.adopt(snapshot)
