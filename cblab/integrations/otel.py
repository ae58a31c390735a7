"""OpenTelemetry for cblab's breakers: span attributes, state-change events, metrics.

Needs the optional extra ``cblab[otel]`` (opentelemetry-api and -sdk); nothing in
cblab imports this module unless you do.

    from cblab.integrations.otel import BreakerTelemetry

    telemetry = BreakerTelemetry()       # the global tracer and meter providers
    mcp.add_middleware(CircuitBreakerMiddleware(..., telemetry=telemetry))
    GuardedClient(client, telemetry=telemetry)      # agents
    BreakerTransport(telemetry=telemetry)           # any httpx client
    telemetry.watch(breaker)                        # any other breaker

There is no OpenTelemetry semantic convention for circuit breakers yet
(semantic-conventions #2355); these names follow the ``resilience.*`` namespace
Polly uses.

What lands on the span that carries a protected call (fastmcp's SERVER span for
the middleware, the CLIENT span the guard and the transport open):

=====================================  ===================================================
``resilience.circuit_breaker.name``    the breaker
``resilience.circuit_breaker.state``   its state when the call was admitted (or refused)
``resilience.circuit_breaker.outcome`` success, failure, excluded, rejected, cancelled,
                                       late or local_overload (a slow success is
                                       ``success`` with ``resilience.circuit_breaker.slow``)
``error.type``, status ERROR           ``circuit_open`` when the breaker refused the call,
                                       ``local_overload`` when no bulkhead slot was free
event ``resilience.circuit_breaker.    every state change the call caused, with ``from``,
state_change``                         ``to`` and ``reason``
=====================================  ===================================================

Metrics (meter ``cblab``), every one with ``resilience.circuit_breaker.name``:
``resilience.circuit_breaker.state`` (up-down counter, one series per ``state``, 1 for
the current one, 0 otherwise), ``resilience.circuit_breaker.calls`` (counter by
``outcome``), ``resilience.circuit_breaker.call.duration`` (histogram, seconds, by
``outcome``; refusals have no duration) and ``resilience.circuit_breaker.transitions``
(counter by ``from`` and ``to``).

Everything is fed by breaker listeners (`cblab._events`): a listener runs on the call
path, in the caller's context, so ``trace.get_current_span()`` is the span of the call
that caused the event.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cblab.integrations.otel needs OpenTelemetry: pip install 'cblab[otel]'"
    ) from exc

from cblab import CircuitBreaker, CircuitState, Outcome
from cblab._events import CallRecord, StateChange

__all__ = [
    "CALLS",
    "DURATION",
    "NAME",
    "OUTCOME",
    "STATE",
    "STATE_CHANGE",
    "TRANSITIONS",
    "BreakerTelemetry",
]

PREFIX = "resilience.circuit_breaker"
NAME = f"{PREFIX}.name"
STATE = f"{PREFIX}.state"
OUTCOME = f"{PREFIX}.outcome"
SLOW = f"{PREFIX}.slow"
STATE_CHANGE = f"{PREFIX}.state_change"
CALLS = f"{PREFIX}.calls"
DURATION = f"{PREFIX}.call.duration"
TRANSITIONS = f"{PREFIX}.transitions"
ERROR_TYPE = "error.type"

#: A breaker's outcome -> the outcome attribute (a slow success is a success).
_OUTCOMES = {o: o.value for o in Outcome} | {Outcome.SLOW: Outcome.SUCCESS.value}
LOCAL_OVERLOAD = "local_overload"
_REFUSALS = {Outcome.REJECTED: "circuit_open"}


class _Watch:
    """One breaker's listener, with its attribute sets built once (the call path)."""

    __slots__ = ("telemetry", "name", "_call_attrs", "_span_attrs")

    def __init__(self, telemetry: BreakerTelemetry, name: str) -> None:
        self.telemetry = telemetry
        self.name = name
        # Prebuilt per (state, outcome): the hot path reuses dicts, builds none.
        self._call_attrs = {o: {NAME: name, OUTCOME: v} for o, v in _OUTCOMES.items()}
        self._span_attrs = {
            (s, o): {NAME: name, STATE: s.value, OUTCOME: v}
            for s in CircuitState for o, v in _OUTCOMES.items()}

    def __call__(self, event: Any) -> None:
        if type(event) is CallRecord:
            self.call(event)
        elif isinstance(event, StateChange):
            self.telemetry._state_change(event)

    def call(self, record: CallRecord) -> None:
        outcome = record.outcome
        telemetry = self.telemetry
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(self._span_attrs[record.state, outcome])
            if outcome is Outcome.SLOW:
                span.set_attribute(SLOW, True)
            refusal = _REFUSALS.get(outcome)
            if refusal is not None:
                span.set_attribute(ERROR_TYPE, refusal)
                span.set_status(Status(StatusCode.ERROR, f"circuit breaker {self.name!r} "
                                       f"refused the call ({record.state.value})"))
        attrs = self._call_attrs[outcome]
        telemetry.calls.add(1, attrs)
        if outcome is not Outcome.REJECTED:
            telemetry.duration.record(record.duration, attrs)


class BreakerTelemetry:
    """Report breakers to OpenTelemetry (see the module doc).

    `tracer_provider` / `meter_provider`: default the global ones (whatever the
    application configured; the API's no-ops otherwise).
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.tracer = trace.get_tracer("cblab", tracer_provider=tracer_provider)
        meter = metrics.get_meter("cblab", meter_provider=meter_provider)
        self.state = meter.create_up_down_counter(
            STATE, unit="1", description="1 for the breaker's current state, 0 otherwise.")
        self.calls = meter.create_counter(
            CALLS, unit="{call}", description="Calls through the breaker, by outcome.")
        self.duration = meter.create_histogram(
            DURATION, unit="s", description="Duration of permitted calls, by outcome.")
        self.transitions = meter.create_counter(
            TRANSITIONS, unit="{transition}", description="Breaker state changes.")
        self._watches: dict[str, tuple[CircuitBreaker, _Watch]] = {}

    # --- breakers ---------------------------------------------------------------------

    def watch(self, breaker: CircuitBreaker) -> CircuitBreaker:
        """Report `breaker`'s calls and state changes from now on (once per breaker)."""
        seen = self._watches.get(breaker.name)
        if seen is not None and seen[0] is breaker:
            return breaker
        listener = _Watch(self, breaker.name)
        self._watches[breaker.name] = (breaker, listener)
        current = breaker.state
        for state in CircuitState:  # every series exists from the start: 1 for the current
            self.state.add(int(state is current), {NAME: breaker.name, STATE: state.value})
        breaker.add_listener(listener)
        return breaker

    def unwatch(self, breaker: CircuitBreaker) -> None:
        seen = self._watches.pop(breaker.name, None)
        if seen is not None and seen[0] is breaker:
            breaker.remove_listener(seen[1])

    def _state_change(self, change: StateChange) -> None:
        from_state, to_state = change.from_state.value, change.to_state.value
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(STATE_CHANGE, {
                NAME: change.breaker, "from": from_state, "to": to_state,
                "reason": change.reason})
        if from_state != to_state:  # a replica's shared-state note keeps the state
            self.state.add(-1, {NAME: change.breaker, STATE: from_state})
            self.state.add(1, {NAME: change.breaker, STATE: to_state})
            self.transitions.add(1, {NAME: change.breaker, "from": from_state,
                                     "to": to_state})

    # --- what the integrations call ----------------------------------------------------

    def local_overload(self, breaker: CircuitBreaker) -> None:
        """A call refused before the breaker saw it: no bulkhead slot in time."""
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes({NAME: breaker.name, STATE: breaker.state.value,
                                 OUTCOME: LOCAL_OVERLOAD, ERROR_TYPE: LOCAL_OVERLOAD})
            span.set_status(Status(StatusCode.ERROR, f"no bulkhead slot for {breaker.name!r}"))
        self.calls.add(1, {NAME: breaker.name, OUTCOME: LOCAL_OVERLOAD})

    @contextlib.contextmanager
    def guard_span(self, client: Any, tool: str) -> Iterator[Any]:
        """The CLIENT span ``tools/call <tool>`` around one `GuardedClient` call.

        It carries fastmcp's MCP attributes and replaces fastmcp's own client span
        (suppressed inside, so a trace has one CLIENT span per call; the trace context
        still travels in ``params._meta``). An in-process client keeps fastmcp's span:
        suppressing it there would suppress the server's spans too.
        """
        from fastmcp.telemetry import suppress_fastmcp_telemetry

        attributes = {"mcp.method.name": "tools/call", "gen_ai.tool.name": tool,
                      "gen_ai.operation.name": "execute_tool"}
        in_process = type(client.transport).__name__ == "FastMCPTransport"
        with self.tracer.start_as_current_span(
            f"tools/call {tool}", kind=SpanKind.CLIENT, attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                if in_process:
                    yield span
                else:
                    with suppress_fastmcp_telemetry():
                        yield span
            except Exception as exc:
                _record_error(span, exc)
                raise

    async def traced_request(
        self, send: Callable[[Any], Awaitable[Any]], request: Any
    ) -> Any:
        """`BreakerTransport`: `send(request)` under a CLIENT span that ends with the body
        (the breaker records the outcome when the body ends, under this span)."""
        url = request.url
        span = self.tracer.start_span(request.method, kind=SpanKind.CLIENT, attributes={
            "http.request.method": request.method, "server.address": url.host,
            "server.port": url.port or {"https": 443}.get(url.scheme, 80),
            "url.full": str(url.copy_with(query=None))})
        try:
            with _current(span):
                response = await send(request)
        except BaseException as exc:
            _record_error(span, exc)
            span.end()
            raise
        span.set_attribute("http.response.status_code", response.status_code)
        response.stream = _span_stream_type()(response.stream, span)
        return response


def _current(span: Any) -> Any:
    """`span` current for a block; errors are recorded by `_record_error`, not here."""
    return trace.use_span(span, end_on_exit=False, record_exception=False,
                          set_status_on_exception=False)


def _record_error(span: Any, exc: BaseException) -> None:
    """Record `exc` on `span` (``error.type`` its class, unless the breaker set one)."""
    if not span.is_recording():
        return
    if ERROR_TYPE not in (getattr(span, "attributes", None) or {}):
        span.set_attribute(ERROR_TYPE, type(exc).__qualname__)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))


@functools.cache
def _span_stream_type() -> type[Any]:
    import httpx  # only the transport needs it

    class _SpanStream(httpx.AsyncByteStream):
        """A response body read with its request's span current (so the breaker's record,
        made when the body ends, lands on it); the span ends with the body."""

        def __init__(self, stream: Any, span: Any) -> None:
            self._stream = stream
            self._span = span
            self._ended = False

        async def __aiter__(self) -> AsyncIterator[bytes]:
            chunks = self._stream.__aiter__()
            while True:
                # The span is current only while the wrapped stream runs, never across a
                # yield: a context change inside a generator would leak to its consumer.
                try:
                    with _current(self._span):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except BaseException as exc:
                    _record_error(self._span, exc)
                    self._end()
                    raise
                yield chunk
            self._end()

        def _end(self) -> None:
            if not self._ended:
                self._ended = True
                self._span.end()

        async def aclose(self) -> None:
            try:
                with _current(self._span):
                    await self._stream.aclose()
            finally:
                self._end()

    return _SpanStream
