"""Related patterns on virtual time (notebook 05): retries, and bulkheads.

Two small discrete-event models, each driving the real `CircuitBreaker` on a
`ManualClock` (the simulator's approach, specialised to what these demos need):

- `simulate_retries`: clients retry failed calls with exponential backoff (with
  or without jitter) against a backend with a few workers and a queue. A short
  slowdown fills the queue; callers time out and retry; the retries keep the
  queue full after the backend has recovered: a *retry storm* (a metastable
  failure). A breaker in front of the backend sheds the load and lets it drain.
- `simulate_bulkhead`: one server with a fixed pool of workers calls two
  dependencies. When one hangs, its calls hold every worker and the healthy one
  starves too; a bulkhead (a per-dependency concurrency limit) keeps the damage
  in its compartment, and a breaker makes the hanging calls fail fast.

Both return a `PatternRun` whose `timeline` has one row per second and variant.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import CircuitBreaker, CircuitBreakerConfig, ManualClock, Outcome, Permit

if TYPE_CHECKING:
    import pandas as pd
    import plotly.graph_objects as go

__all__ = [
    "BulkheadSpec",
    "PatternRun",
    "RetrySpec",
    "compare_bulkheads",
    "compare_retries",
    "simulate_bulkhead",
    "simulate_retries",
]


class _Loop:
    """The smallest event loop that does the job: a heap of (time, serial, callback)."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._serial = itertools.count()

    def at(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (when, next(self._serial), callback))

    def after(self, delay: float, callback: Callable[[], None]) -> None:
        self.at(self.clock.now + delay, callback)

    def run(self, until: float) -> None:
        heap = self._heap
        while heap and heap[0][0] <= until:
            when, _, callback = heapq.heappop(heap)
            self.clock.set(when)
            callback()
        self.clock.set(until)


class _Seconds:
    """Per-second counters, turned into timeline rows at the end."""

    def __init__(self, duration: float, names: Iterable[str]) -> None:
        self.n = math.ceil(duration)
        self.counts = {name: [0] * self.n for name in names}
        self.samples: dict[str, list[float | str | None]] = {}

    def add(self, name: str, t: float, amount: int = 1) -> None:
        i = int(t)
        if 0 <= i < self.n:
            self.counts[name][i] += amount

    def sample(self, name: str, t: float, value: float | str | None) -> None:
        series = self.samples.setdefault(name, [None] * self.n)
        i = int(t)
        if 0 <= i < self.n:
            series[i] = value


def _state_sampler(loop: _Loop, seconds: _Seconds, breaker: CircuitBreaker | None,
                   extra: Callable[[float], None] | None = None) -> None:
    def tick() -> None:
        t = loop.clock.now
        seconds.sample("state", t, breaker.state.value if breaker else None)
        if extra is not None:
            extra(t)
        if t + 1 < seconds.n:
            loop.after(1.0, tick)

    loop.at(0.5, tick)


# --- retries ------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrySpec:
    """The retry demo's world. Times in seconds, rates per second."""

    duration: float = 120.0
    rate: float = 80.0  # client requests per second (Poisson)
    workers: int = 8  # backend concurrency
    service_time: float = 0.05  # mean seconds per request when healthy (exponential)
    queue_limit: int = 400  # requests waiting beyond this are refused at once (503)
    slowdown: tuple[float, float] = (20.0, 30.0)  # the incident: service is `slow_factor`x slower
    slow_factor: float = 8.0
    client_timeout: float = 1.0  # each attempt's deadline
    max_retries: int = 3
    backoff: float = 0.1  # base delay; attempt n waits backoff * 2**n (capped at 5 s)
    jitter: bool = True  # "full jitter": a uniform draw in [0, delay]
    seed: int = 1


def simulate_retries(
    spec: RetrySpec = RetrySpec(), *, breaker: CircuitBreakerConfig | None = None,
    variant: str | None = None,
) -> PatternRun:
    """Clients with retries against a queueing backend; a breaker in front if given.

    Work a caller has given up on is still done by the backend (nobody tells it),
    which is what turns a short slowdown into a lasting outage.
    """
    import pandas as pd

    loop = _Loop()
    rng = random.Random(spec.seed)
    cb = CircuitBreaker("backend", breaker, clock=loop.clock) if breaker else None
    seconds = _Seconds(spec.duration, ("requests", "succeeded", "failed", "rejected",
                                       "attempts_sent", "useful_work", "wasted_work"))
    queue: deque[dict[str, Any]] = deque()
    busy = [0]

    def service_time() -> float:
        lo, hi = spec.slowdown
        factor = spec.slow_factor if lo <= loop.clock.now < hi else 1.0
        return rng.expovariate(1.0 / (spec.service_time * factor))

    def start_work() -> None:
        while busy[0] < spec.workers and queue:
            attempt = queue.popleft()
            busy[0] += 1
            loop.after(service_time(), functools.partial(finish_work, attempt))

    def finish_work(attempt: dict[str, Any]) -> None:
        busy[0] -= 1
        if attempt["done"]:
            seconds.add("wasted_work", loop.clock.now)
        else:
            seconds.add("useful_work", loop.clock.now)
            settle(attempt, ok=True)
        start_work()

    def settle(attempt: dict[str, Any], ok: bool) -> None:
        attempt["done"] = True
        permit: Permit | None = attempt["permit"]
        if cb is not None and permit is not None:
            cb.record(permit, Outcome.SUCCESS if ok else Outcome.FAILURE)
        if ok:
            seconds.add("succeeded", loop.clock.now)
        elif attempt["n"] < spec.max_retries:
            delay = min(spec.backoff * 2 ** attempt["n"], 5.0)
            if spec.jitter:
                delay = rng.uniform(0, delay)
            loop.after(delay, lambda: send(attempt["n"] + 1))
        else:
            seconds.add("failed", loop.clock.now)

    def send(n: int) -> None:
        permit = None
        if cb is not None:
            admitted = cb.admit()
            if not admitted.admitted:
                seconds.add("rejected", loop.clock.now)  # fail fast; not worth retrying
                return
            permit = admitted
        attempt = {"n": n, "permit": permit, "done": False}
        seconds.add("attempts_sent", loop.clock.now)
        loop.after(spec.client_timeout, lambda: None if attempt["done"] else settle(attempt, False))
        if len(queue) >= spec.queue_limit:
            loop.after(0.001, lambda: settle(attempt, False))  # 503 at once
            return
        queue.append(attempt)
        start_work()

    def arrival() -> None:
        seconds.add("requests", loop.clock.now)
        send(0)
        loop.after(rng.expovariate(spec.rate), arrival)

    loop.at(rng.expovariate(spec.rate), arrival)
    _state_sampler(loop, seconds, cb, lambda t: seconds.sample("queue", t, len(queue)))
    loop.run(spec.duration)

    frame = pd.DataFrame({"t": range(seconds.n), **seconds.counts,
                          "queue": seconds.samples["queue"], "state": seconds.samples["state"]})
    finished = frame["succeeded"] + frame["failed"] + frame["rejected"]
    frame["success_rate"] = (frame["succeeded"] / finished.where(finished > 0)).fillna(1.0)
    frame["amplification"] = frame["attempts_sent"] / frame["requests"].where(frame["requests"] > 0)
    label = variant or _retry_label(spec, breaker)
    frame.insert(0, "variant", label)
    return PatternRun("retries", frame, spec.slowdown, _summary(frame, label))


def _retry_label(spec: RetrySpec, breaker: CircuitBreakerConfig | None) -> str:
    if spec.max_retries == 0:
        text = "no retries"
    else:
        text = f"{spec.max_retries} retries" + (" + jitter" if spec.jitter else ", no jitter")
    return text + (" + breaker" if breaker else "")


def compare_retries(spec: RetrySpec = RetrySpec(), *, breaker: CircuitBreakerConfig | None = None,
                    ) -> PatternRun:
    """The notebook's four runs on the same world: no retries, retries without and with
    jitter, and retries with jitter behind a breaker."""
    breaker = breaker or CircuitBreakerConfig(failure_threshold=10, timeout=2.0,
                                              half_open_max_calls=3, success_threshold=2)
    runs = [
        simulate_retries(RetrySpec(**{**spec.__dict__, "max_retries": 0})),
        simulate_retries(RetrySpec(**{**spec.__dict__, "jitter": False})),
        simulate_retries(spec),
        simulate_retries(spec, breaker=breaker),
    ]
    return PatternRun.concat(runs)


# --- bulkheads -------------------------------------------------------------------------


@dataclass(frozen=True)
class BulkheadSpec:
    """The bulkhead demo's world: one server, `workers` slots, two dependencies."""

    duration: float = 90.0
    rate: dict[str, float] = field(default_factory=lambda: {"users": 20.0, "orders": 20.0})
    workers: int = 16  # the server's concurrency (threads, connections...)
    latency: float = 0.05  # healthy dependency latency (exponential mean)
    hang: tuple[float, float] = (20.0, 60.0)  # "orders" hangs in this interval
    hanging: str = "orders"
    call_timeout: float = 5.0  # the server's deadline on a dependency call
    seed: int = 1


def simulate_bulkhead(
    spec: BulkheadSpec = BulkheadSpec(),
    *,
    bulkhead: dict[str, int] | None = None,
    breaker: CircuitBreakerConfig | None = None,
    variant: str | None = None,
) -> PatternRun:
    """A server whose requests each hold a worker while they call their dependency.

    `bulkhead` caps the workers each dependency may hold ({"orders": 4}): a request
    over its cap is refused at once. `breaker` puts a breaker on each dependency.
    A request that finds no free worker is refused (503).
    """
    import pandas as pd

    loop = _Loop()
    rng = random.Random(spec.seed)
    names = list(spec.rate)
    breakers = ({n: CircuitBreaker(n, breaker, clock=loop.clock) for n in names}
                if breaker else {})
    counts = ["requests", "succeeded", "failed", "rejected", "no_worker"]
    seconds = _Seconds(spec.duration, [f"{n}_{c}" for n in names for c in counts])
    busy = {n: 0 for n in names}
    caps = dict(bulkhead or {})

    def call_latency(name: str) -> float:
        lo, hi = spec.hang
        if name == spec.hanging and lo <= loop.clock.now < hi:
            return math.inf
        return rng.expovariate(1.0 / spec.latency)

    def request(name: str) -> None:
        t = loop.clock.now
        seconds.add(f"{name}_requests", t)
        if sum(busy.values()) >= spec.workers:
            seconds.add(f"{name}_no_worker", t)
            return
        if name in caps and busy[name] >= caps[name]:
            seconds.add(f"{name}_rejected", t)  # bulkhead full: fail fast
            return
        permit = None
        if name in breakers:
            admitted = breakers[name].admit()
            if not admitted.admitted:
                seconds.add(f"{name}_rejected", t)
                return
            permit = admitted
        busy[name] += 1
        latency = call_latency(name)
        ok = latency <= spec.call_timeout
        loop.after(min(latency, spec.call_timeout), lambda: done(name, permit, ok))

    def done(name: str, permit: Permit | None, ok: bool) -> None:
        busy[name] -= 1
        if permit is not None:
            breakers[name].record(permit, Outcome.SUCCESS if ok else Outcome.FAILURE)
        seconds.add(f"{name}_{'succeeded' if ok else 'failed'}", loop.clock.now)

    def arrivals(name: str) -> None:
        request(name)
        loop.after(rng.expovariate(spec.rate[name]), lambda: arrivals(name))

    for name in names:
        loop.at(rng.expovariate(spec.rate[name]), functools.partial(arrivals, name))

    def sample(t: float) -> None:
        for name in names:
            seconds.sample(f"{name}_busy", t, busy[name])
            if name in breakers:
                seconds.sample(f"{name}_state", t, breakers[name].state.value)

    _state_sampler(loop, seconds, None, sample)
    loop.run(spec.duration)

    rows = []
    for name in names:
        part = pd.DataFrame({"t": range(seconds.n)})
        for c in counts:
            part[c] = seconds.counts[f"{name}_{c}"]
        part["busy"] = seconds.samples[f"{name}_busy"]
        part["state"] = seconds.samples.get(f"{name}_state", [None] * seconds.n)
        finished = part["succeeded"] + part["failed"] + part["rejected"] + part["no_worker"]
        part["success_rate"] = (part["succeeded"] / finished.where(finished > 0)).fillna(1.0)
        part.insert(1, "dependency", name)
        rows.append(part)
    frame = pd.concat(rows, ignore_index=True)
    label = variant or _bulkhead_label(bulkhead, breaker)
    frame.insert(0, "variant", label)
    summary = _summary(frame[frame["dependency"] != spec.hanging], label)
    healthy = ", ".join(n for n in names if n != spec.hanging)
    summary = {k if k == "variant" else f"{healthy}_{k}": v for k, v in summary.items()}
    lo, hi = spec.hang
    during = frame[(frame["dependency"] == spec.hanging) & frame["t"].between(lo, hi - 1)]
    summary[f"{spec.hanging}_workers_held"] = float(during["busy"].mean())
    return PatternRun("bulkhead", frame, spec.hang, summary)


def _bulkhead_label(bulkhead: dict[str, int] | None, breaker: CircuitBreakerConfig | None) -> str:
    parts = ["shared pool"] if not bulkhead else [
        "bulkhead " + ", ".join(f"{k} ≤ {v}" for k, v in bulkhead.items())]
    return " + ".join(parts + (["breaker"] if breaker else []))


def compare_bulkheads(spec: BulkheadSpec = BulkheadSpec(), *, cap: int = 4,
                      breaker: CircuitBreakerConfig | None = None) -> PatternRun:
    """Shared pool, bulkhead on the hanging dependency, and bulkhead + breaker."""
    breaker = breaker or CircuitBreakerConfig(failure_threshold=3, timeout=5.0)
    return PatternRun.concat([
        simulate_bulkhead(spec),
        simulate_bulkhead(spec, bulkhead={spec.hanging: cap}),
        simulate_bulkhead(spec, bulkhead={spec.hanging: cap}, breaker=breaker),
    ])


# --- results ------------------------------------------------------------------------------


def _summary(frame: pd.DataFrame, label: str) -> dict[str, Any]:
    requests = int(frame["requests"].sum())
    succeeded = int(frame["succeeded"].sum())
    row: dict[str, Any] = {"variant": label, "requests": requests, "succeeded": succeeded,
                           "availability_pct": 100.0 * succeeded / requests if requests else 100.0}
    if "attempts_sent" in frame:
        row["backend_attempts"] = int(frame["attempts_sent"].sum())
        row["amplification"] = row["backend_attempts"] / requests if requests else 0.0
        row["wasted_work"] = int(frame["wasted_work"].sum())
        healthy = frame["success_rate"] >= 0.95
        # recovered: the first second after the incident from which success stays >= 95%
        bad = frame.index[~healthy]
        row["recovered_at_s"] = (float(frame["t"].iloc[bad[-1]] + 1) if len(bad) else 0.0)
        if len(bad) and bad[-1] == frame.index[-1]:
            row["recovered_at_s"] = None  # never recovered within the run
    return row


_DASHES = ("solid", "dash", "dot", "dashdot")


def _line(i: int, colour: str) -> dict[str, Any]:
    """Series i's line: the first widest and solid, later ones narrower and dashed, so a
    series drawn over an identical one (retries with and without jitter, say) still
    lets it show."""
    return {"color": colour, "width": max(4.5 - 1.2 * i, 1.5), "dash": _DASHES[i % len(_DASHES)]}


@dataclass(frozen=True)
class PatternRun:
    """One or more variants of a pattern demo: a per-second timeline and a summary."""

    pattern: str  # "retries" or "bulkhead"
    timeline: pd.DataFrame
    incident: tuple[float, float]
    summaries: list[dict[str, Any]] | dict[str, Any]

    @property
    def summary(self) -> pd.DataFrame:
        import pandas as pd

        rows = self.summaries if isinstance(self.summaries, list) else [self.summaries]
        return pd.DataFrame(rows).set_index("variant")

    @classmethod
    def concat(cls, runs: list[PatternRun]) -> PatternRun:
        import pandas as pd

        summaries: list[dict[str, Any]] = []
        for run in runs:
            summaries += run.summaries if isinstance(run.summaries, list) else [run.summaries]
        return cls(runs[0].pattern, pd.concat([r.timeline for r in runs], ignore_index=True),
                   runs[0].incident, summaries)

    def figure(self) -> go.Figure:
        """Retries: load reaching the backend and callers' success rate per variant.
        Bulkhead: the healthy dependency's success rate and the workers each one holds."""
        from plotly.subplots import make_subplots

        from ..plots.style import apply_layout, variant_colors

        frame = self.timeline
        variants = list(dict.fromkeys(frame["variant"]))
        colours = variant_colors(variants)
        if self.pattern == "retries":
            titles = ("attempts reaching the backend per second", "callers' success rate")
            fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                                subplot_titles=titles)
            for i, v in enumerate(variants):
                part = frame[frame["variant"] == v]
                fig.add_scatter(x=part["t"], y=part["attempts_sent"], name=v, legendgroup=v,
                                line=_line(i, colours[v]), row=1, col=1)
                fig.add_scatter(x=part["t"], y=part["success_rate"], name=v, legendgroup=v,
                                showlegend=False, line=_line(i, colours[v]), row=2, col=1)
            fig.update_yaxes(tickformat=".0%", range=[-0.02, 1.05], row=2, col=1)
        else:
            hanging = frame.groupby("dependency")["failed"].sum().idxmax()
            healthy = next(d for d in dict.fromkeys(frame["dependency"]) if d != hanging)
            titles = (f"{healthy} (healthy): success rate", f"workers held by {hanging} (hanging)")
            fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                                subplot_titles=titles)
            for i, v in enumerate(variants):
                part = frame[frame["variant"] == v]
                ok = part[part["dependency"] == healthy]
                bad = part[part["dependency"] == hanging]
                fig.add_scatter(x=ok["t"], y=ok["success_rate"], name=v, legendgroup=v,
                                line=_line(i, colours[v]), row=1, col=1)
                fig.add_scatter(x=bad["t"], y=bad["busy"], name=v, legendgroup=v,
                                showlegend=False, line=_line(i, colours[v]), row=2, col=1)
            fig.update_yaxes(tickformat=".0%", range=[-0.02, 1.05], row=1, col=1)
        lo, hi = self.incident
        for row in (1, 2):
            fig.add_vrect(x0=lo, x1=hi, fillcolor="rgba(214, 69, 69, 0.08)", line_width=0,
                          row=row, col=1)
        apply_layout(fig, height=520, xaxis_title=None,
                     title="Retries through an incident (shaded: the backend slows down)"
                     if self.pattern == "retries"
                     else f"A shared worker pool vs bulkheads (shaded: {hanging} hangs)")
        fig.update_xaxes(title_text="time (s)", row=2, col=1)
        return fig
