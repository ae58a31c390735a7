"""`RedisStore`: breaker state shared by every replica through one Redis server.

    store = await RedisStore("redis://127.0.0.1:6379/0", namespace="shop").connect()
    breaker = CircuitBreaker("github", config, store=store)

Every read-modify-write is one Lua script (see `scripts`), timed by the Redis
server's clock. Each operation has a short deadline (`op_timeout`, default
50 ms). Inside an event loop operations run in the background (a breaker
operation never waits on the network; see `record.SharedRecord`); without a
running loop (threads, `call_sync`, scripts) they are blocking round trips
bounded by the same deadline.

When Redis is unreachable or stalled the store falls back, visibly: `available`
turns False, one log line, status listeners are told (the demo server logs an
event row and sets a `/metrics` gauge), and every breaker runs on its local
view until a background probe finds Redis again; then every breaker re-joins
(adopts the shared record).

It falls back on evidence, never on one slow answer:

==========================================  ===========================================
what happened to an operation               the store
==========================================  ===========================================
connection refused / reset / closed,        falls back at once (cause: the error)
credentials refused, server loading
timed out (`op_timeout`)                    counts a slow answer, and PINGs Redis with
                                            a longer deadline (`ping_timeout`)
that PING fails too                         falls back (cause: "PING failed ...")
`fallback_after` operations in a row        falls back (cause: "N operations in a row
timed out                                   timed out ...")
any operation answers                       the count of timeouts in a row restarts
==========================================  ===========================================

`status()` reports `fallbacks`, `slow_answers` and `fallback_cause`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .._config import CircuitBreakerConfig, ConfigError
from .record import SharedRecord
from .scripts import (
    OPERATIONS,
    Move,
    Reply,
    Snapshot,
    channel_for,
    check_namespace,
    config_args,
    keys_for,
    parse_announcement,
    parse_reply,
    script_text,
)

__all__ = ["RedisStore", "StoreError"]

log = logging.getLogger("cblab.stores.redis")

Listener = Callable[[str, Snapshot, tuple[Move, ...]], Any]
StatusListener = Callable[[bool, str | None], Any]


class StoreError(ConfigError):
    """The shared store cannot be used as configured (bad URL, password, namespace...)."""


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        math.isfinite(value) and value > 0
    ):
        raise StoreError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


def _in_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class RedisStore:
    """Shared breaker state on Redis (`redis` client; install `cblab[redis]`).

    `namespace` prefixes every key (1-64 of A-Z a-z 0-9 _ . -): breakers of
    different applications on one Redis never collide. `op_timeout` bounds every
    store operation; `staleness` bounds how old a replica's view of a breaker
    may get without news before it is re-read (pub/sub normally updates it
    within milliseconds); `ttl` expires the keys of a breaker nobody wrote for
    that long; `retry_interval` is how often a fallen-back store probes Redis.
    `replica` names this process in status and events (default: host:pid).
    A timed-out operation alone is not evidence that Redis is gone: the store falls
    back after `fallback_after` timeouts in a row, or when a PING with
    `ping_timeout` (default: 10 x op_timeout, at least 0.5 s) fails too.

    `client_time=True` is a testing switch: scripts take the breaker's clock
    (e.g. a `ManualClock`) instead of the Redis server's. Never use it with
    real replicas: their clocks disagree, which is why the server's is used.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "cblab",
        op_timeout: float = 0.05,
        connect_timeout: float = 2.0,
        staleness: float = 1.0,
        ttl: float = 7 * 24 * 3600.0,
        retry_interval: float = 0.5,
        fallback_after: int = 3,
        ping_timeout: float | None = None,
        replica: str | None = None,
        client_time: bool = False,
    ) -> None:
        try:
            import redis
            import redis.asyncio as aioredis
            from redis.asyncio.retry import Retry as AsyncRetry
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - the extra is part of the test deps
            raise StoreError("RedisStore needs the redis client: pip install 'cblab[redis]'") from None
        if not isinstance(url, str) or urlsplit(url).scheme not in {"redis", "rediss", "unix"}:
            raise StoreError(
                "url must be a redis://, rediss:// or unix:// URL such as "
                f"redis://127.0.0.1:6379/0, got {url!r}"
            )
        try:
            self.namespace = check_namespace(namespace)
        except ValueError as exc:
            raise StoreError(str(exc)) from None
        self.op_timeout = _positive("op_timeout", op_timeout)
        self.connect_timeout = _positive("connect_timeout", connect_timeout)
        self.staleness = _positive("staleness", staleness)
        self.ttl = _positive("ttl", ttl)
        self.retry_interval = _positive("retry_interval", retry_interval)
        if isinstance(fallback_after, bool) or not isinstance(fallback_after, int) or (
            fallback_after < 1
        ):
            raise StoreError(f"fallback_after must be an integer >= 1, got {fallback_after!r}")
        self.fallback_after = fallback_after
        self.ping_timeout = (max(10 * self.op_timeout, 0.5) if ping_timeout is None
                             else _positive("ping_timeout", ping_timeout))
        self.replica = replica or f"{socket.gethostname()}:{os.getpid()}"
        self.client_time = bool(client_time)
        self.url = url
        self.safe_url = _redacted(url)
        try:
            # async: every operation is bounded by asyncio.timeout(op_timeout); the
            # socket limits only back it up (and let connect() wait longer)
            self._aclient = aioredis.Redis.from_url(
                url, retry=AsyncRetry(NoBackoff(), 0), health_check_interval=0,
                socket_timeout=self.connect_timeout, socket_connect_timeout=self.connect_timeout,
            )
            # sync (no loop): the socket limits are the deadline
            self._client = redis.Redis.from_url(
                url, retry=Retry(NoBackoff(), 0), health_check_interval=0,
                socket_timeout=self.op_timeout, socket_connect_timeout=self.op_timeout,
            )
        except (ValueError, TypeError) as exc:
            raise StoreError(f"bad Redis URL {self.safe_url!r}: {exc}") from None
        self._ascripts = {op: self._aclient.register_script(script_text(op)) for op in OPERATIONS}
        self._scripts = {op: self._client.register_script(script_text(op)) for op in OPERATIONS}
        self.channel = channel_for(self.namespace)
        self.connected = False
        self.available = False  # True once connected, False while fallen back
        self.last_error: str | None = None
        self.fallbacks = 0  # times the store fell back to local state
        self.round_trips = 0  # scripts sent (the benchmarks count them)
        self.failed_operations = 0
        self.slow_answers = 0  # operations that timed out (each is not yet a fallback)
        self.fallback_cause: str | None = None  # the evidence behind the last fallback
        self._timeouts_in_a_row = 0
        self._checking: asyncio.Task[None] | None = None  # the PING after a timeout
        self.epoch = 0  # +1 at every re-join: records re-read the shared state
        self._listeners: list[Listener] = [self._announced]
        self._status_listeners: list[StatusListener] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._probe: asyncio.Task[None] | None = None
        self._last_probe = 0.0
        self._pending: set[asyncio.Task[Reply | None]] = set()
        self._records: dict[str, list[SharedRecord]] = {}
        self._heard: dict[str, float] = {}  # breaker name -> monotonic time of the last news

    # --- lifecycle ----------------------------------------------------------------------

    def _explain(self, exc: BaseException) -> StoreError:
        import redis.exceptions as errors

        text = str(exc)
        if isinstance(exc, errors.AuthenticationError) or "WRONGPASS" in text or "NOAUTH" in text:
            return StoreError(f"Redis at {self.safe_url} refused the connection's credentials "
                              f"(wrong or missing password): {text}")
        if isinstance(exc, TimeoutError | errors.TimeoutError):
            return StoreError(f"Redis at {self.safe_url} did not answer within "
                              f"{self.connect_timeout:g} s")
        if isinstance(exc, errors.ResponseError):
            return StoreError(f"Redis at {self.safe_url} answered with an error: {text}")
        return StoreError(f"cannot reach Redis at {self.safe_url}: {text or type(exc).__name__}")

    def _check_version(self, info: dict[str, Any]) -> None:
        version = str(info.get("redis_version", "0"))
        if int(version.split(".")[0] or 0) < 6:
            raise StoreError(f"Redis at {self.safe_url} is version {version}; cblab needs >= 6")

    async def connect(self) -> RedisStore:
        """Check the server answers (and accepts the password); start pub/sub.

        Raises StoreError naming the problem: unreachable, credentials refused,
        not answering in time, too old.
        """
        if self.connected:
            return self
        try:
            async with asyncio.timeout(self.connect_timeout):
                await self._aclient.ping()
                info = await self._aclient.info("server")
        except Exception as exc:
            raise self._explain(exc) from None
        self._check_version(info)
        self.connected = self.available = True
        self._tasks.append(asyncio.create_task(self._listen(), name="cblab-redis-pubsub"))
        self._tasks.append(asyncio.create_task(self._refresh(), name="cblab-redis-refresh"))
        return self

    def connect_sync(self) -> RedisStore:
        """`connect()` for code without an event loop (no pub/sub: views refresh on use)."""
        if self.connected:
            return self
        deadline = time.monotonic() + self.connect_timeout
        while True:  # each attempt is bounded by op_timeout; retry until connect_timeout
            try:
                self._client.ping()
                info = self._client.info("server")
                break
            except Exception as exc:
                import redis.exceptions as errors

                retry = isinstance(exc, TimeoutError | errors.TimeoutError)
                if not retry or time.monotonic() > deadline:
                    raise self._explain(exc) from None
        self._check_version(info)
        self.connected = self.available = True
        return self

    async def close(self) -> None:
        tasks = [*self._tasks, *([self._probe] if self._probe else []),
                 *([self._checking] if self._checking else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self.drain()
        self._tasks, self._probe, self._checking = [], None, None
        with contextlib.suppress(Exception):
            await self._aclient.aclose()
        with contextlib.suppress(Exception):
            self._client.close()
        self.connected = self.available = False

    def close_sync(self) -> None:
        """`close()` for code without an event loop."""
        with contextlib.suppress(Exception):
            self._client.close()
        self.connected = self.available = False

    async def __aenter__(self) -> RedisStore:
        return await self.connect()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- listeners, fallback and re-join ---------------------------------------------------

    def subscribe(self, listener: Listener) -> None:
        """`listener(name, snapshot, moves)` for every change any replica announces."""
        self._listeners.append(listener)

    def on_status(self, listener: StatusListener) -> None:
        """`listener(available, error)` when the store falls back or re-joins."""
        self._status_listeners.append(listener)

    def _set_available(self, available: bool, error: str | None) -> None:
        if available == self.available:
            return
        self.available = available
        if available:
            self._timeouts_in_a_row = 0
            self.epoch += 1
            log.warning("cblab: shared breaker state on %s is back; replica %s re-joins it",
                        self.safe_url, self.replica)
        else:
            self.fallbacks += 1
            self.fallback_cause = error
            self._last_probe = time.monotonic()
            log.warning("cblab: shared breaker state on %s unavailable (%s); replica %s runs "
                        "its breakers on local state", self.safe_url, error, self.replica)
            if _in_loop() and (self._probe is None or self._probe.done()):
                self._probe = asyncio.get_running_loop().create_task(self._probe_until_back())
        for listener in list(self._status_listeners):
            with contextlib.suppress(Exception):
                listener(available, error)
        if available:
            for records in list(self._records.values()):
                for record in records:
                    record.rejoin()

    async def _probe_until_back(self) -> None:
        while not self.available:
            await asyncio.sleep(self.retry_interval)
            try:
                async with asyncio.timeout(self.op_timeout * 4):
                    await self._aclient.ping()
            except Exception:
                continue
            self.last_error = None
            self._set_available(True, None)

    def _probe_sync(self) -> None:
        """Without a loop: at most one blocking PING per retry_interval while fallen back."""
        now = time.monotonic()
        if now - self._last_probe < self.retry_interval:
            return
        self._last_probe = now
        try:
            self._client.ping()
        except Exception:
            return
        self._set_available(True, None)

    def usable(self) -> bool:
        """Available now (probing Redis first, when fallen back and there is no loop)."""
        if not self.available and self.connected and not _in_loop():
            self._probe_sync()
        return self.available

    async def _listen(self) -> None:
        """Apply every announcement; re-subscribe (and re-read) after a lost connection."""
        first = True
        while True:
            pubsub = self._aclient.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if not first:  # announcements may have been lost meanwhile
                    for records in list(self._records.values()):
                        for record in records:
                            record.refresh()
                first = False
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is None or message.get("type") != "message":
                        continue
                    try:
                        name, snapshot, moves = parse_announcement(json.loads(message["data"]))
                    except (ValueError, KeyError, TypeError, IndexError):
                        continue  # not ours
                    for listener in list(self._listeners):
                        with contextlib.suppress(Exception):
                            listener(name, snapshot, moves)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except Exception:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                await asyncio.sleep(self.retry_interval)

    def _announced(self, name: str, snapshot: Snapshot, moves: tuple[Move, ...]) -> None:
        self._heard[name] = time.monotonic()
        for record in self._records.get(name, ()):
            record.adopt(snapshot)

    async def _refresh(self) -> None:
        """The backstop for lost announcements: re-read a breaker not heard of lately."""
        while True:
            await asyncio.sleep(self.staleness / 2)
            if not self.available:
                continue
            limit = time.monotonic() - self.staleness
            for name, records in list(self._records.items()):
                if records and self._heard.get(name, 0.0) < limit:
                    self._heard[name] = time.monotonic()  # one re-read in flight at a time
                    for record in records:
                        record.refresh()

    # --- operations: each one script, one round trip, one deadline ----------------------

    def _args(self, op: str, name: str, config: CircuitBreakerConfig, extra: list[Any],
              now: float | None) -> tuple[list[str], list[Any]]:
        client_now = round(now * 1_000_000) if self.client_time and now is not None else ""
        args = [self.channel, max(round(self.ttl * 1000), 1), name, *config_args(config),
                client_now, *extra]
        return list(keys_for(self.namespace, name)), args

    def _failed(self, exc: BaseException) -> None:
        import redis.exceptions as errors

        text = str(exc)
        if isinstance(exc, errors.ResponseError) and not isinstance(exc, errors.NoScriptError) \
                and not text.startswith(("BUSY", "LOADING", "NOAUTH", "WRONGPASS")):
            raise exc  # a bug in a script or its arguments: loud, never a silent fallback
        self.failed_operations += 1
        self.last_error = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        if not isinstance(exc, TimeoutError | errors.TimeoutError):
            self._set_available(False, self.last_error)  # the server is gone or refuses us
            return
        # One slow answer is not an outage: fall back on evidence (see the module doc).
        self.slow_answers += 1
        self._timeouts_in_a_row += 1
        if self._timeouts_in_a_row >= self.fallback_after:
            self._set_available(False, f"{self._timeouts_in_a_row} operations in a row timed "
                                       f"out after {self.op_timeout:g} s")
        elif _in_loop() and (self._checking is None or self._checking.done()):
            self._checking = asyncio.get_running_loop().create_task(self._check_after_timeout())

    def _answered(self) -> None:
        self._timeouts_in_a_row = 0

    async def _check_after_timeout(self) -> None:
        """After a timed-out operation: is Redis there at all? A PING with a longer
        deadline decides."""
        try:
            async with asyncio.timeout(self.ping_timeout):
                await self._aclient.ping()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if self.available:
                self._set_available(False, f"PING failed within {self.ping_timeout:g} s after "
                                           f"an operation timed out ({type(exc).__name__})")

    async def _arun(self, op: str, name: str, config: CircuitBreakerConfig,
                    extra: list[Any], now: float | None = None) -> Reply | None:
        if not self.available:
            return None
        keys, args = self._args(op, name, config, extra, now)
        self.round_trips += 1
        try:
            async with asyncio.timeout(self.op_timeout):
                raw = await self._ascripts[op](keys=keys, args=args)
        except Exception as exc:
            self._failed(exc)
            return None
        self._answered()
        self._heard[name] = time.monotonic()
        return parse_reply(raw)

    def _run(self, op: str, name: str, config: CircuitBreakerConfig,
             extra: list[Any], now: float | None = None) -> Reply | None:
        if not self.usable():
            return None
        keys, args = self._args(op, name, config, extra, now)
        self.round_trips += 1
        try:
            raw = self._scripts[op](keys=keys, args=args)
        except Exception as exc:
            self._failed(exc)
            return None
        self._answered()
        self._heard[name] = time.monotonic()
        return parse_reply(raw)

    async def admit(self, name: str, config: CircuitBreakerConfig) -> Reply | None:
        """Ask the shared state for a permit (moves OPEN -> HALF-OPEN, leases trials)."""
        return await self._arun("admit", name, config, [])

    async def record(self, name: str, config: CircuitBreakerConfig, outcome: str,
                     generation: int, trial: int, reason: str = "") -> Reply | None:
        """Record `success`, `failure` or `release` (a cancelled/excluded trial)."""
        return await self._arun("record", name, config, [outcome, generation, trial, reason])

    async def control(self, name: str, config: CircuitBreakerConfig, action: str,
                      reason: str = "") -> Reply | None:
        """force_open, force_closed, disable, reset, reconfigure, or read."""
        return await self._arun("control", name, config, [action, reason])

    async def read(self, name: str, config: CircuitBreakerConfig) -> Reply | None:
        return await self.control(name, config, "read")

    # --- the breaker store: records, and the transport they use -------------------------

    def attach(self, name: str, config: CircuitBreakerConfig, now: float,
               on_change: Callable[[Any], None]) -> SharedRecord:
        """A breaker's record (`cblab._store.BreakerStore`).

        Inside an event loop, `await store.connect()` first (it checks the URL and
        password); without one, the first attach connects (blocking).
        """
        if not self.connected:
            if _in_loop():
                raise StoreError(
                    "RedisStore is not connected: `await store.connect()` first (it checks "
                    "the URL and password), or use `async with RedisStore(...) as store:`"
                )
            self.connect_sync()
        siblings = self._records.setdefault(name, [])
        record = SharedRecord(self, name, config, now, on_change,
                              siblings[-1] if siblings else None)
        siblings.append(record)
        return record

    @property
    def immediate(self) -> bool:
        """No running loop: operations are blocking round trips (within op_timeout)."""
        return not _in_loop()

    def send(self, name: str, config: CircuitBreakerConfig, op: str, extra: list[Any],
             now: float, done: Callable[[Reply | None], None] | None) -> Reply | None:
        """Without a loop: run `op` and return its reply. In a loop: run it in the
        background and call `done(reply)` when it answered (None: it failed)."""
        if not _in_loop():
            return self._run(op, name, config, extra, now)
        task = asyncio.get_running_loop().create_task(self._arun(op, name, config, extra, now))
        self._pending.add(task)

        def finished(task: asyncio.Task[Reply | None]) -> None:
            self._pending.discard(task)
            failed = task.cancelled() or task.exception() is not None
            if done is not None:
                done(None if failed else task.result())

        task.add_done_callback(finished)
        return None

    async def call(self, name: str, config: CircuitBreakerConfig, op: str,
                   extra: list[Any], now: float) -> Reply | None:
        """Run `op` and wait for its reply (None: unavailable or past the deadline)."""
        return await self._arun(op, name, config, extra, now)

    async def drain(self) -> None:
        """Until every operation sent so far has answered (or failed)."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    # --- status -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        return {
            "kind": "redis",
            "url": self.safe_url,
            "namespace": self.namespace,
            "replica": self.replica,
            "available": self.available,
            "fallbacks": self.fallbacks,
            "fallback_cause": self.fallback_cause,
            "slow_answers": self.slow_answers,
            "last_error": self.last_error,
            "round_trips": self.round_trips,
            "op_timeout": self.op_timeout,
        }

    def __repr__(self) -> str:
        state = "available" if self.available else "fallback" if self.connected else "new"
        return f"RedisStore({self.safe_url!r}, namespace={self.namespace!r}, {state})"
