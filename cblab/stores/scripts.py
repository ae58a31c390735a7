"""The Lua scripts behind the shared breaker state, and their replies parsed.

Each operation is one server-side script (prelude + operation + epilogue, shipped
as package files under `cblab/stores/lua/`), so every read-modify-write of a
breaker's shared state is atomic. Times in scripts and replies are the Redis
server's clock in integer microseconds; clients only ever use differences.
"""

from __future__ import annotations

import math
import re
from functools import cache
from importlib import resources
from typing import Any, NamedTuple
from urllib.parse import quote

from .._config import CircuitBreakerConfig

__all__ = [
    "Move",
    "Reply",
    "Snapshot",
    "check_namespace",
    "config_args",
    "keys_for",
    "parse_reply",
    "script_text",
]

OPERATIONS = ("admit", "record", "control", "window")
_NAMESPACE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


@cache
def script_text(operation: str) -> str:
    """The full Lua source of one operation (prelude + operation + epilogue)."""
    if operation not in OPERATIONS:
        raise ValueError(f"unknown script {operation!r}; known: {', '.join(OPERATIONS)}")
    folder = resources.files("cblab.stores") / "lua"
    return "\n".join(
        (folder / f"{part}.lua").read_text(encoding="utf-8")
        for part in ("prelude", operation, "epilogue")
    )


def check_namespace(namespace: object) -> str:
    """A namespace is 1-64 letters, digits, `_`, `.` or `-` (it is part of every key)."""
    if not isinstance(namespace, str) or not _NAMESPACE.fullmatch(namespace):
        raise ValueError(
            f"namespace must be 1-64 characters from A-Z a-z 0-9 _ . - (no spaces, braces "
            f"or colons), got {namespace!r}"
        )
    return namespace


def keys_for(namespace: str, name: str) -> tuple[str, str, str]:
    """The breaker's state hash, trial-lease set and shared window; `{...}` is the
    cluster hash tag.

    The breaker name is percent-encoded, so any name (even one with braces)
    keeps both keys in one slot.
    """
    tag = "{" + quote(name, safe="") + "}"
    base = f"cblab:{namespace}:{tag}"
    return base, f"{base}:trials", f"{base}:window"


def channel_for(namespace: str) -> str:
    """One pub/sub channel per namespace carries every breaker's changes."""
    return f"cblab:{namespace}:changes"


def _us(seconds: float | None) -> int:
    return 0 if seconds is None or math.isinf(seconds) else round(seconds * 1_000_000)


def config_args(config: CircuitBreakerConfig) -> list[Any]:
    """ARGV[4..11]: the settings every script needs (the caller's config)."""
    policy = config.policy.name
    kind = policy if policy in ("consecutive", "cumulative") else "window"
    return [
        config.failure_threshold,
        config.success_threshold,
        config.half_open_max_calls,
        _us(config.timeout),
        repr(float(config.backoff_multiplier)),
        _us(config.max_timeout),
        max(_us(config.trial_limit), 1),
        kind,
    ]


def window_args(policy: Any, generation: int, calls: int, failures: int, slow: int,
                outcomes: str) -> list[Any]:
    """ARGV[13..23] of window.lua for a `CountWindow` or `TimeWindow` batch."""
    if policy.name == "count_window":
        kind, length, bucket = "count", policy.size, 0
    else:
        kind, length, bucket = "time", _us(policy.window), _us(policy.window / policy.buckets)
    slow_limit = policy.slow_call_rate_threshold if policy.slow_call_duration is not None else -1
    return [generation, kind, calls, failures, slow, outcomes, length, max(bucket, 1),
            policy.minimum_calls, repr(float(policy.failure_rate_threshold)),
            repr(float(slow_limit))]


class Snapshot(NamedTuple):
    """The shared state as one script saw it (times: server microseconds)."""

    state: str
    mode: str
    generation: int
    failure_count: int  # the shared consecutive or cumulative failure count
    opened_at: int
    open_for: int
    now: int
    in_flight: int
    trial_successes: int
    trips_in_a_row: int
    trips: int
    trial_timeouts: int
    changed_at: int
    reason: str

    @property
    def retry_after(self) -> float:
        """Seconds of OPEN wait left, as of `now`."""
        return max(self.opened_at + self.open_for - self.now, 0) / 1e6


class Move(NamedTuple):
    """One transition a script made."""

    came_from: str
    to: str
    at: int
    reason: str
    generation: int


class Reply(NamedTuple):
    result: str
    extra: int
    snapshot: Snapshot
    moves: tuple[Move, ...]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_snapshot(values: list[Any]) -> Snapshot:
    fields: list[Any] = [_text(values[0]), _text(values[1])]
    fields += [int(v) for v in values[2:13]]
    fields.append(_text(values[13]))
    return Snapshot._make(fields)


def parse_reply(raw: list[Any]) -> Reply:
    snapshot = parse_snapshot(raw[2:16])
    rest = raw[16:]
    moves = tuple(
        Move(_text(rest[i]), _text(rest[i + 1]), int(rest[i + 2]), _text(rest[i + 3]),
             int(rest[i + 4]))
        for i in range(0, len(rest), 5)
    )  # fmt: skip
    return Reply(_text(raw[0]), int(raw[1]), snapshot, moves)


def parse_announcement(payload: dict[str, Any]) -> tuple[str, Snapshot, tuple[Move, ...]]:
    """A pub/sub message (`cjson` of name, snapshot, moves) parsed."""
    moves = payload.get("m") or []
    if isinstance(moves, dict):  # cjson encodes an empty Lua table as {}
        moves = []
    return (
        str(payload["name"]),
        parse_snapshot(payload["s"]),
        tuple(Move(m[0], m[1], int(m[2]), m[3], int(m[4])) for m in moves),
    )
