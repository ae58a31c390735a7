"""Instrumentation: every tool call and every breaker state change as one schema row.

One server-level `cblab.EventLog` holds the rows in a single gap-free sequence,
so `GET /events?after=SEQ` hands a poller everything in order:

- a `ToolCallRecorder` middleware (outermost) appends one ``kind="call"`` row per
  MCP tool call, when the call ends (success, tool error, validation error or
  cancellation);
- a listener on each breaker appends one ``kind="state"`` row per state change,
  at the moment it happens (so a trip caused by a call is logged just before
  that call's row), and captures the breaker's own `CallRecord` for the call in
  progress, so the call row carries the breaker's verdict (outcome, state at
  admission, generation).

Rows are stored as tuples in `cblab.schema.EVENT_COLUMNS` order (without `seq`)
and become dicts only when read. `t` is seconds since the server started, on the
breakers' clock (monotonic by default).

What a call row's `outcome` means:

- the call went through a breaker: the breaker's outcome (`success`, `failure`,
  `slow`, `rejected`, `cancelled`, `excluded`, `late`). A dependency that answers
  "not found" worked correctly: it is a breaker *success* even though the tool
  reports an error; `error_type` then says `not_found`;
  Arguments the tool refuses are `excluded` (`invalid_argument`, `ValidationError`);
- no local slot came free (the middleware's bulkhead): `dropped`, `error_type`
  `local_overload`; the breaker saw nothing;
- no breaker involved (`circuit_status`, unknown tools): `success`, or `excluded`
  with the exception class name, or `cancelled`.
"""

from __future__ import annotations

import asyncio
from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from typing import Any

from fastmcp.exceptions import DisabledError, NotFoundError
from fastmcp.server.middleware import Middleware, MiddlewareContext

from cblab import CallRecord, CircuitBreaker, Event, EventLog, Outcome, StateChange
from cblab.codes import LOCAL_OVERLOAD, TOOL_ERROR
from cblab.schema import EVENT_COLUMNS

__all__ = ["CallNote", "Instrumentation", "ToolCallRecorder", "note_error"]

# Bounds on what a caller's choice of tool name can make the server keep (issue 15):
# an unknown tool is counted under one label and its name cut short in its row,
# and the `tool` label set of `cblab_tool_calls_total` never exceeds MAX_TOOL_LABELS.
UNKNOWN_TOOL = "unknown"
OTHER_TOOLS = "other"
MAX_TOOL_LABELS = 256
MAX_TOOL_NAME_CHARS = 64


def _short(name: str) -> str:
    return name if len(name) <= MAX_TOOL_NAME_CHARS else name[: MAX_TOOL_NAME_CHARS - 1] + "…"

SOURCE = "server"

# Metric kinds, resilience4j-style, for each breaker outcome of a permitted call.
_KIND = {
    Outcome.SUCCESS: "successful",
    Outcome.SLOW: "slow",
    Outcome.FAILURE: "failed",
    Outcome.EXCLUDED: "ignored",
    Outcome.CANCELLED: "ignored",
    Outcome.LATE: "ignored",
}
KINDS = ("successful", "failed", "ignored", "slow")
#: Upper bounds (seconds) of the call-duration histogram's buckets (Prometheus's defaults).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CallNote:
    """What a tool call learned on its way: the breaker's record and an error code."""

    __slots__ = ("record", "error_type")

    def __init__(self) -> None:
        self.record: CallRecord | None = None
        self.error_type: str | None = None


_current_call: ContextVar[CallNote | None] = ContextVar("cblab_current_call", default=None)


def note_error(error_type: str) -> None:
    """Tools call this to name why a call failed (`http_503`, `not_found`, ...)."""
    note = _current_call.get()
    if note is not None:
        note.error_type = error_type


class _FailureWindow:
    """Outcomes of the last `size` counted calls, for the failure-rate gauge of
    breakers whose policy has no window of its own (consecutive, cumulative)."""

    __slots__ = ("_ring", "_next", "calls", "failures")
    size = 100
    minimum_calls = 10

    def __init__(self) -> None:
        self._ring = bytearray(self.size)  # 0 empty, 1 success, 2 failure
        self._next = 0
        self.calls = self.failures = 0

    def add(self, failed: bool) -> None:
        old = self._ring[self._next]
        if old:
            self.calls -= 1
            self.failures -= old == 2
        self._ring[self._next] = 2 if failed else 1
        self._next = (self._next + 1) % self.size
        self.calls += 1
        self.failures += failed

    @property
    def rate(self) -> float:
        return self.failures / self.calls if self.calls >= self.minimum_calls else -1.0


class BreakerMeter:
    """Per-breaker counters the breaker itself does not keep: time spent per kind."""

    __slots__ = ("count", "seconds", "buckets", "window")

    def __init__(self) -> None:
        self.count = dict.fromkeys(KINDS, 0)
        self.seconds = dict.fromkeys(KINDS, 0.0)
        # calls per duration bucket (not cumulative; the last one is above every bound)
        self.buckets = {kind: [0] * (len(DURATION_BUCKETS) + 1) for kind in KINDS}
        self.window = _FailureWindow()


class Instrumentation:
    """The server's event log (schema rows) and the meters behind `/metrics`."""

    def __init__(self, *, variant: str, capacity: int, clock: Callable[[], float]) -> None:
        self.variant = variant
        self.clock = clock
        self.t0 = clock()
        self.log = EventLog(capacity)
        self.meters: dict[str, BreakerMeter] = {}
        self.bulkheads: dict[str, Any] = {}  # the middleware's, by breaker (for /metrics)
        self.tool_calls: Counter[tuple[str, str]] = Counter()  # (tool, outcome) -> count
        self._tool_labels: set[str] = set()
        self.shared_state: Any = None  # a shared breaker store, when replicas share state

    # --- breakers -------------------------------------------------------------------

    def attach(self, breaker: CircuitBreaker) -> None:
        """Log `breaker`'s state changes and meter its calls."""
        meter = self.meters[breaker.name] = BreakerMeter()

        def on_event(event: Event) -> None:
            if isinstance(event, StateChange):
                self._append(
                    "state", event.at - self.t0, event.breaker, None, None, None,
                    event.from_state.value, event.to_state.value, None, event.reason,
                    event.generation,
                )
                return
            outcome = event.outcome
            kind = _KIND.get(outcome)
            if kind is not None:
                meter.count[kind] += 1
                meter.seconds[kind] += event.duration
                meter.buckets[kind][bisect_left(DURATION_BUCKETS, event.duration)] += 1
                if outcome is not Outcome.LATE and kind != "ignored":
                    meter.window.add(outcome is Outcome.FAILURE)
            note = _current_call.get()
            if note is not None:
                note.record = event

        breaker.add_listener(on_event)

    # --- rows -------------------------------------------------------------------------

    def _append(
        self, kind: str, t: float, breaker: str | None, tool: str | None, outcome: str | None,
        latency: float | None, state: str | None, state_after: str | None,
        error_type: str | None, reason: str | None, generation: int | None,
    ) -> None:
        # Column order: EVENT_COLUMNS without "seq" (the log numbers rows itself).
        self.log.append((
            kind, t, SOURCE, self.variant, breaker, tool, outcome, latency, state,
            state_after, error_type, reason, generation, None,
        ))

    def record_call(
        self, *, tool: str, started: float, ended: float, outcome: str,
        breaker: CircuitBreaker | None, state_before: str | None, note: CallNote,
        error_type: str | None, known: bool = True,
    ) -> None:
        """One call row; `known` False for a tool the server does not have."""
        record = note.record
        state = state_before
        generation = None
        if record is not None:
            outcome = record.outcome.value
            state = record.state.value
            generation = record.generation
            error_type = note.error_type or record.error_type or error_type
        elif note.error_type is not None:
            error_type = note.error_type
        state_after = breaker.state.value if breaker is not None else None
        self.tool_calls[(self._tool_label(tool, known), outcome)] += 1
        self._append(
            "call", started - self.t0, breaker.name if breaker is not None else None, _short(tool),
            outcome, ended - started, state, state_after, error_type, None, generation,
        )

    def _tool_label(self, tool: str, known: bool) -> str:
        if not known:
            return UNKNOWN_TOOL
        labels = self._tool_labels
        if tool not in labels:
            if len(labels) >= MAX_TOOL_LABELS:
                return OTHER_TOOLS
            labels.add(tool)
        return tool

    def now(self) -> float:
        """Seconds since the server started (the `t` of a row logged now)."""
        return self.clock() - self.t0

    def rows(self, after: int = 0, limit: int | None = None) -> dict[str, Any]:
        """`{"events": [row, ...], "last_seq": n, "missed": m, "now": t}`."""
        part = self.log.since(after, limit)
        columns = EVENT_COLUMNS
        events = [dict(zip(columns, (seq, *row), strict=True))  # type: ignore[misc]
                  for seq, row in part.events]  # rows are the tuples _append stores
        return {
            "events": events,
            "last_seq": part.last_seq,
            "missed": part.missed,
            "now": self.now(),
        }


class ToolCallRecorder(Middleware):
    """Records every `tools/call` as one row. Put it first (outermost).

    `breakers` maps a tool name to the breaker it calls through, so the row can
    carry the breaker's state before and after the call.
    """

    def __init__(
        self, instrumentation: Instrumentation, breakers: Mapping[str, CircuitBreaker]
    ) -> None:
        self.instrumentation = instrumentation
        self.breakers = dict(breakers)

    async def on_call_tool(self, context: MiddlewareContext[Any], call_next: Any) -> Any:
        instr = self.instrumentation
        tool = context.message.name
        breaker = self.breakers.get(tool)
        state_before = breaker.state.value if breaker is not None else None
        note = CallNote()
        token = _current_call.set(note)
        started = instr.clock()
        outcome, error_type = Outcome.SUCCESS.value, None
        known = True
        try:
            result = await call_next(context)
            if getattr(result, "is_error", False):
                # A refusal names itself (dependency_unavailable, local_overload).
                content = getattr(result, "structured_content", None)
                code = content.get("error") if isinstance(content, dict) else None
                error_type = code if isinstance(code, str) else TOOL_ERROR
                outcome = "dropped" if code == LOCAL_OVERLOAD else Outcome.EXCLUDED.value
            return result
        except asyncio.CancelledError:
            outcome, error_type = Outcome.CANCELLED.value, "CancelledError"
            raise
        except Exception as exc:
            # Refused before any breaker saw it (bad arguments, unknown tool), unless
            # the breaker recorded the call: then its record decides the row.
            outcome, error_type = Outcome.EXCLUDED.value, type(exc).__name__
            if isinstance(exc, NotFoundError | DisabledError):
                known, error_type = False, "unknown_tool"
            raise
        finally:
            _current_call.reset(token)
            instr.record_call(
                tool=tool, started=started, ended=instr.clock(), outcome=outcome,
                breaker=breaker, state_before=state_before, note=note, error_type=error_type,
                known=known,
            )
