"""Fault profiles: what one service does wrong, and the decision for each request.

Pure: no I/O, no clock. The live backend and the simulator both call
`plan_request(profile, rng)` with a seeded `random.Random` (see `rng_for`), so the
same seed and the same sequence of requests give the same decisions in both.

RNG draws. `plan_request` consumes exactly `DRAWS_PER_REQUEST` (5) calls to
`rng.random()`, always in this order and whatever the profile or mode, so that
changing a profile never shifts the random stream of later requests:

1. reset:   ``u < reset_rate``    -> kind "reset"
2. error:   ``u < error_rate``    -> kind "error"
3. status:  picks the error status from ``status_mix`` (cumulative weights,
            statuses in ascending order; drawn even when not an error)
4. slow:    ``u < slow_fraction`` -> latency is ``slow_ms``
5. latency: one sample of the latency distribution, by inverse CDF

Precedence: mode "down" > mode "hang" > reset > error > ok.

Who calls it. The live backend plans every request that reaches a service
(health checks excepted), *before* the capacity check, so the stream depends only
on the order of arrivals, never on timing. Connections refused while a service is
down never reach it and consume no draws: a simulator must skip them too.

Capacity (`max_concurrency`, `overflow`) is decided by the caller from its own
count of busy slots: `capacity_verdict` gives the same answer the server gives.

Hang. A hung request holds its capacity slot. When the mode leaves "hang" (to "up")
the requests still hung are released and answered at once like a healthy request
(the data lookup, no latency, no further draws), as after a stall; so is a request
planned "hang" that waited in the capacity queue until the hang was over. Going
"down" aborts them instead. A client that gives up closes its connection, which
ends its hung request. `Backend.stop()` aborts whatever is still hung.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, ClassVar, Literal, NamedTuple

__all__ = [
    "DRAWS_PER_REQUEST",
    "ERROR_STATUSES",
    "HEALTHY",
    "MODES",
    "OVERFLOW_POLICIES",
    "ConstantLatency",
    "FaultProfile",
    "Latency",
    "LognormalLatency",
    "NormalLatency",
    "ProfileError",
    "RequestPlan",
    "capacity_verdict",
    "latency_from_dict",
    "plan_request",
    "rng_for",
]

Mode = Literal["up", "hang", "down"]
PlanKind = Literal["ok", "error", "hang", "reset", "down"]
CapacityVerdict = Literal["admit", "reject", "queue"]

MODES: tuple[str, ...] = ("up", "hang", "down")
OVERFLOW_POLICIES: tuple[str, ...] = ("reject", "queue")
ERROR_STATUSES: tuple[int, ...] = (429, 500, 502, 503, 504)
DRAWS_PER_REQUEST = 5

# Upper bounds: a lab needs none larger, and unbounded numbers let one request
# wait for ever (latency 1e308 ms) or overflow arithmetic downstream.
MAX_LATENCY_MS = 3_600_000.0  # one hour; a sampled latency is capped here too
MAX_SIGMA = 5.0
MAX_RETRY_AFTER_S = 86_400.0
MAX_CONCURRENCY = 100_000

# inverse CDFs are undefined at 0 and 1; rng.random() can return exactly 0.0
_P_MIN = 1e-12
_STANDARD_NORMAL = NormalDist()


class ProfileError(ValueError):
    """An invalid fault profile; the message names the offending field."""


# --- field validation -------------------------------------------------------------


def _number(value: Any, name: str) -> float:
    # bool is an int subclass: `true` in JSON is not a rate
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProfileError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value):
        raise ProfileError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _fraction(value: Any, name: str) -> float:
    number = _number(value, name)
    if not 0.0 <= number <= 1.0:
        raise ProfileError(f"{name} must be between 0 and 1, got {value!r}")
    return number


def _non_negative(value: Any, name: str, high: float = math.inf) -> float:
    number = _number(value, name)
    if number < 0:
        raise ProfileError(f"{name} must be >= 0, got {value!r}")
    if number > high:
        raise ProfileError(f"{name} must be at most {high:g}, got {value!r}")
    return number


def _milliseconds(value: Any, name: str) -> float:
    return _non_negative(value, name, MAX_LATENCY_MS)


def _positive(value: Any, name: str) -> float:
    number = _number(value, name)
    if number <= 0:
        raise ProfileError(f"{name} must be > 0, got {value!r}")
    return number


def _choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ProfileError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
    return value


def _check_keys(data: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise ProfileError(
            f"unknown field{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(f'{where}{key}') for key in unknown)}; "
            f"known fields: {', '.join(known)}"
        )


def _mapping(value: Any, name: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProfileError(f"{name} must be an object, got {value!r}")
    return value


# --- latency distributions ----------------------------------------------------------


@dataclass(frozen=True)
class ConstantLatency:
    """Every request takes `ms` milliseconds."""

    ms: float = 1.0
    kind: ClassVar[str] = "constant"

    def __post_init__(self) -> None:
        object.__setattr__(self, "ms", _milliseconds(self.ms, "latency.ms"))

    def quantile_ms(self, u: float) -> float:
        return self.ms

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "ms": self.ms}


@dataclass(frozen=True)
class NormalLatency:
    """Normal(mean_ms, sd_ms) conditioned on being >= 0 (a truncated normal).

    With a mean several sd above 0 this is the plain normal; closer to 0 the
    realised mean is a little above `mean_ms`.
    """

    mean_ms: float
    sd_ms: float
    kind: ClassVar[str] = "normal"
    _dist: NormalDist | None = field(init=False, repr=False, compare=False, default=None)
    _p_zero: float = field(init=False, repr=False, compare=False, default=0.0)

    def __post_init__(self) -> None:
        mean = _milliseconds(self.mean_ms, "latency.mean_ms")
        sd = _milliseconds(self.sd_ms, "latency.sd_ms")
        object.__setattr__(self, "mean_ms", mean)
        object.__setattr__(self, "sd_ms", sd)
        if sd > 0:
            dist = NormalDist(mean, sd)
            object.__setattr__(self, "_dist", dist)
            object.__setattr__(self, "_p_zero", dist.cdf(0.0))

    def quantile_ms(self, u: float) -> float:
        if self._dist is None:
            return self.mean_ms
        # map u onto the part of the CDF above 0: one draw, exact truncation
        p = self._p_zero + u * (1.0 - self._p_zero)
        p = min(max(p, _P_MIN), 1.0 - _P_MIN)
        return max(0.0, self._dist.inv_cdf(p))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "mean_ms": self.mean_ms, "sd_ms": self.sd_ms}


@dataclass(frozen=True)
class LognormalLatency:
    """Lognormal with the given median; `sigma` is the sd of log(latency)."""

    median_ms: float
    sigma: float
    kind: ClassVar[str] = "lognormal"

    def __post_init__(self) -> None:
        object.__setattr__(self, "median_ms", _milliseconds(self.median_ms, "latency.median_ms"))
        object.__setattr__(self, "sigma", _non_negative(self.sigma, "latency.sigma", MAX_SIGMA))

    def quantile_ms(self, u: float) -> float:
        if self.sigma == 0 or self.median_ms == 0:
            return self.median_ms
        p = min(max(u, _P_MIN), 1.0 - _P_MIN)
        return self.median_ms * math.exp(self.sigma * _STANDARD_NORMAL.inv_cdf(p))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "median_ms": self.median_ms, "sigma": self.sigma}


Latency = ConstantLatency | NormalLatency | LognormalLatency

_LATENCY_KINDS: dict[str, tuple[type, tuple[str, ...]]] = {
    "constant": (ConstantLatency, ("ms",)),
    "normal": (NormalLatency, ("mean_ms", "sd_ms")),
    "lognormal": (LognormalLatency, ("median_ms", "sigma")),
}


def latency_from_dict(data: Any) -> Latency:
    """Build a latency distribution from `{"kind": ..., <its parameters>}`."""
    data = _mapping(data, "latency")
    kind = _choice(data.get("kind"), "latency.kind", tuple(_LATENCY_KINDS))
    cls, params = _LATENCY_KINDS[kind]
    _check_keys(data, ("kind", *params), "latency.")
    missing = [name for name in params if name not in data]
    if missing:
        raise ProfileError(f"latency.{missing[0]} is required for kind {kind!r}")
    return cls(**{name: data[name] for name in params})


# --- the profile ----------------------------------------------------------------------


def _status_mix(value: Any) -> tuple[tuple[int, float], ...]:
    value = _mapping(value, "status_mix")
    if not value:
        raise ProfileError("status_mix must name at least one status")
    mix: dict[int, float] = {}
    for key, weight in value.items():
        status = key
        if isinstance(key, str) and key.isdigit():
            status = int(key)
        if isinstance(status, bool) or status not in ERROR_STATUSES:
            raise ProfileError(
                f"status_mix keys must be among {', '.join(map(str, ERROR_STATUSES))}, got {key!r}"
            )
        if status in mix:
            raise ProfileError(f"status_mix names status {status} twice")
        mix[status] = _positive(weight, f"status_mix[{status}]")
    return tuple(sorted(mix.items()))


_PROFILE_FIELDS: tuple[str, ...] = (
    "mode",
    "error_rate",
    "status_mix",
    "retry_after_s",
    "latency",
    "slow_fraction",
    "slow_ms",
    "reset_rate",
    "max_concurrency",
    "overflow",
)


@dataclass(frozen=True)
class FaultProfile:
    """How one service misbehaves. Defaults are a healthy service (1 ms latency).

    `status_mix` is stored as ``((status, weight), ...)`` in ascending status order;
    a mapping is accepted. `latency` accepts a dict too. Construction validates.
    """

    mode: Mode = "up"
    error_rate: float = 0.0
    status_mix: tuple[tuple[int, float], ...] = ((500, 1.0),)
    retry_after_s: float | None = 1.0
    latency: Latency = field(default_factory=ConstantLatency)
    slow_fraction: float = 0.0
    slow_ms: float = 1000.0
    reset_rate: float = 0.0
    max_concurrency: int | None = None
    overflow: Literal["reject", "queue"] = "reject"
    _status_cdf: tuple[tuple[float, int], ...] = field(
        init=False, repr=False, compare=False, default=()
    )

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        _choice(self.mode, "mode", MODES)
        put("error_rate", _fraction(self.error_rate, "error_rate"))
        mix: Any = self.status_mix
        if isinstance(mix, tuple):
            try:
                mix = dict(mix)
            except (TypeError, ValueError):
                raise ProfileError(
                    f"status_mix must map statuses to weights, got {mix!r}"
                ) from None
        put("status_mix", _status_mix(mix))
        if self.retry_after_s is not None:
            put("retry_after_s", _non_negative(self.retry_after_s, "retry_after_s", MAX_RETRY_AFTER_S))
        if isinstance(self.latency, Mapping):
            put("latency", latency_from_dict(self.latency))
        elif not isinstance(self.latency, (ConstantLatency, NormalLatency, LognormalLatency)):
            raise ProfileError(f"latency must be a latency object or dict, got {self.latency!r}")
        put("slow_fraction", _fraction(self.slow_fraction, "slow_fraction"))
        put("slow_ms", _milliseconds(self.slow_ms, "slow_ms"))
        put("reset_rate", _fraction(self.reset_rate, "reset_rate"))
        limit = self.max_concurrency
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CONCURRENCY
        ):
            raise ProfileError(
                f"max_concurrency must be an integer >= 1 or null (at most {MAX_CONCURRENCY}), "
                f"got {limit!r}"
            )
        _choice(self.overflow, "overflow", OVERFLOW_POLICIES)

        total = sum(weight for _, weight in self.status_mix)
        cumulative, cdf = 0.0, []
        for status, weight in self.status_mix:
            cumulative += weight / total
            cdf.append((cumulative, status))
        put("_status_cdf", tuple(cdf))

    @classmethod
    def from_dict(cls, data: Any) -> FaultProfile:
        """Validate a JSON-shaped dict; absent fields take healthy defaults."""
        data = _mapping(data, "fault profile")
        _check_keys(data, _PROFILE_FIELDS, "")
        fields = dict(data)
        if "latency" in fields:
            fields["latency"] = latency_from_dict(fields["latency"])
        if "status_mix" in fields:
            fields["status_mix"] = _status_mix(fields["status_mix"])
        return cls(**fields)

    def to_dict(self) -> dict[str, Any]:
        """JSON-shaped; `FaultProfile.from_dict(p.to_dict()) == p`."""
        return {
            "mode": self.mode,
            "error_rate": self.error_rate,
            "status_mix": {str(status): weight for status, weight in self.status_mix},
            "retry_after_s": self.retry_after_s,
            "latency": self.latency.to_dict(),
            "slow_fraction": self.slow_fraction,
            "slow_ms": self.slow_ms,
            "reset_rate": self.reset_rate,
            "max_concurrency": self.max_concurrency,
            "overflow": self.overflow,
        }

    def merged(self, patch: Any) -> FaultProfile:
        """A copy with the fields in `patch` replaced.

        `status_mix` is replaced whole. A `latency` patch without "kind" updates
        the current distribution's parameters; with "kind" it replaces it.
        """
        patch = _mapping(patch, "patch")
        _check_keys(patch, _PROFILE_FIELDS, "")
        merged = self.to_dict()
        for key, value in patch.items():
            if key == "latency" and isinstance(value, Mapping) and "kind" not in value:
                value = {**merged["latency"], **value}
            merged[key] = value
        return FaultProfile.from_dict(merged)

    def pick_status(self, u: float) -> int:
        """The error status for a uniform draw `u` in [0, 1)."""
        for cumulative, status in self._status_cdf:
            if u < cumulative:
                return status
        return self._status_cdf[-1][1]  # u within rounding of 1.0


HEALTHY = FaultProfile()


# --- the per-request decision ---------------------------------------------------------


class RequestPlan(NamedTuple):
    """What the service does with one request (a tuple: one is built per request).

    kind: "ok" (answer normally after `latency_s`), "error" (answer `status` after
    `latency_s`; a 429 carries `retry_after_s`), "reset" (after `latency_s`, send
    part of the response then reset the connection), "hang" (never answer:
    `latency_s` is inf), "down" (refuse/abort: `latency_s` is 0).
    """

    kind: PlanKind
    status: int | None
    latency_s: float
    retry_after_s: float | None = None


def plan_request(profile: FaultProfile, rng: random.Random) -> RequestPlan:
    """Decide one request's fate; consumes exactly `DRAWS_PER_REQUEST` draws."""
    draw = rng.random
    u_reset, u_error, u_status, u_slow, u_latency = draw(), draw(), draw(), draw(), draw()
    if profile.mode == "down":
        return RequestPlan("down", None, 0.0)
    if profile.mode == "hang":
        return RequestPlan("hang", None, math.inf)
    if u_slow < profile.slow_fraction:
        latency_ms = profile.slow_ms
    else:
        latency_ms = profile.latency.quantile_ms(u_latency)
    latency_s = min(latency_ms, MAX_LATENCY_MS) / 1000.0
    if u_reset < profile.reset_rate:
        return _new_plan(RequestPlan, ("reset", 200, latency_s, None))
    if u_error < profile.error_rate:
        status = profile.pick_status(u_status)
        retry_after = profile.retry_after_s if status == 429 else None
        return RequestPlan("error", status, latency_s, retry_after)
    return _new_plan(RequestPlan, ("ok", 200, latency_s, None))


_new_plan = tuple.__new__  # skips NamedTuple's Python-level __new__ on the hot path


def capacity_verdict(profile: FaultProfile, busy: int, waiting: int = 0) -> CapacityVerdict:
    """Admit, reject or queue a request given `busy` held slots and `waiting` queued.

    Queued requests are served first come, first served: a newcomer queues behind them.
    """
    limit = profile.max_concurrency
    if limit is None or (busy < limit and waiting == 0):
        return "admit"
    return "reject" if profile.overflow == "reject" else "queue"


def rng_for(seed: int | str | None, service: str) -> random.Random:
    """The RNG the backend gives `service` for `seed` (independent per service).

    `seed=None` seeds from the OS (not reproducible).
    """
    if seed is None:
        return random.Random()
    return random.Random(f"cblab:{seed}:{service}")
