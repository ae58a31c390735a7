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
``outcome``, observed from the breakers' own counts at collection),
``resilience.circuit_breaker.call.duration`` (histogram, seconds, by ``outcome``;
refusals have no duration; recorded at collection) and
``resilience.circuit_breaker.transitions`` (counter by ``from`` and ``to``).

Also here: `capture_spans` and `traced_calls` (spans as table rows, for the README and
notebooks) and `configure_sdk` (``cblab serve --otel console|otlp``).

Everything is fed by breaker listeners (`cblab._events`): a listener runs on the call
path, in the caller's context, so ``trace.get_current_span()`` is the span of the call
that caused the event.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

try:
    from opentelemetry import metrics, trace
    from opentelemetry.metrics import Observation
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "cblab.integrations.otel needs OpenTelemetry: pip install 'cblab[otel]'"
    ) from exc

from cblab import CircuitBreaker, CircuitState, Outcome
from cblab._events import StateChange

__all__ = [
    "CALLS",
    "DURATION",
    "NAME",
    "OUTCOME",
    "STATE",
    "STATE_CHANGE",
    "TRANSITIONS",
    "BreakerTelemetry",
    "SpanCapture",
    "capture_spans",
    "check_exporter",
    "configure_sdk",
    "traced_calls",
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
_SUCCESS, _FAILURE, _EXCLUDED, _REJECTED, _CANCELLED, _LATE = (o.value for o in (
    Outcome.SUCCESS, Outcome.FAILURE, Outcome.EXCLUDED, Outcome.REJECTED, Outcome.CANCELLED,
    Outcome.LATE))
CIRCUIT_OPEN = "circuit_open"
_SLOW_OUTCOME, _REJECTED_OUTCOME, _FAILURE_OUTCOME = (Outcome.SLOW, Outcome.REJECTED,
                                                     Outcome.FAILURE)
_NO_SPAN = trace.INVALID_SPAN


def _span_getter() -> Callable[[], Any]:
    """`trace.get_current_span` for the call path, without its four frames of lookups.

    With the API's default (contextvars) runtime context the current span is one
    ContextVar read and one dict lookup away: 0.15 µs against 0.8 µs. The shortcut
    uses two private names of opentelemetry-api; if either moves, or another runtime
    context is configured, the public function is used (tests/observability pin that
    both give the same span)."""
    try:
        from opentelemetry import context as otel_context
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        runtime = otel_context._RUNTIME_CONTEXT
        current = runtime._current_context  # type: ignore[attr-defined]  # a ContextVar
    except (ImportError, AttributeError):
        return trace.get_current_span
    if type(runtime) is not ContextVarsRuntimeContext:
        return trace.get_current_span
    get_context = current.get

    def get_current_span() -> Any:
        span = get_context().get(_SPAN_KEY)
        return _NO_SPAN if span is None else span

    return get_current_span


_get_current_span = _span_getter()


class _Watch:
    """One breaker's listener, with its attribute sets built once (the call path)."""

    __slots__ = ("telemetry", "name", "_call_attrs", "_span_attrs")

    def __init__(self, telemetry: BreakerTelemetry, name: str) -> None:
        self.telemetry = telemetry
        self.name = name
        # Prebuilt per (state, outcome): the hot path reuses dicts, builds none.
        self._call_attrs = {o: {NAME: name, OUTCOME: v} for o, v in _OUTCOMES.items()}
        self._span_attrs = {  # [state][outcome]: two lookups beat hashing a tuple
            s: {o: {NAME: name, STATE: s.value, OUTCOME: v} for o, v in _OUTCOMES.items()}
            for s in CircuitState}

    def __call__(self, event: Any) -> None:
        """State changes (calls come through `on_call`)."""
        if isinstance(event, StateChange):
            self.telemetry._state_change(event)

    def on_call(self, state: CircuitState, outcome: Outcome, duration: float,
                error_type: str | None) -> None:
        # The breaker's call observer: one frame per protected call, nothing built
        telemetry = self.telemetry
        if telemetry.spans:
            span = _get_current_span()
            if span.is_recording():
                span.set_attributes(self._span_attrs[state][outcome])
                if outcome is _SLOW_OUTCOME:
                    span.set_attribute(SLOW, True)
                elif outcome is _REJECTED_OUTCOME:
                    span.set_attribute(ERROR_TYPE, CIRCUIT_OPEN)
                    span.set_status(Status(StatusCode.ERROR, f"circuit breaker {self.name!r} "
                                           f"refused the call ({state.value})"))
                elif outcome is _FAILURE_OUTCOME and error_type:
                    # a failure without an exception (an error result counted as one)
                    # would otherwise leave the span looking fine
                    span.set_attribute(ERROR_TYPE, error_type)
                    span.set_status(Status(StatusCode.ERROR, f"{error_type} "
                                           f"(a failure for breaker {self.name!r})"))
        if outcome is not _REJECTED_OUTCOME:  # counts come from the breaker (see _observe)
            durations = telemetry._durations
            if len(durations) < telemetry.pending_durations:
                durations.append((self._call_attrs[outcome], duration))
            else:  # no collection for a while: record at once (bounded memory, no stall)
                telemetry.duration.record(duration, self._call_attrs[outcome])


class _Instruments:
    """One meter's instruments, shared by every BreakerTelemetry on it (an SDK keeps the
    first instrument of a name: a second telemetry's own callback would be dropped)."""

    def __init__(self, meter: Any) -> None:
        self.telemetries: weakref.WeakSet[BreakerTelemetry] = weakref.WeakSet()
        self.state = meter.create_up_down_counter(
            STATE, unit="1", description="1 for the breaker's current state, 0 otherwise.")
        self.calls = meter.create_observable_counter(
            CALLS, callbacks=[self._observe], unit="{call}",
            description="Calls through the breaker, by outcome.")
        self.duration = meter.create_histogram(
            DURATION, unit="s", description="Duration of permitted calls, by outcome.")
        self.transitions = meter.create_counter(
            TRANSITIONS, unit="{transition}", description="Breaker state changes.")

    def _observe(self, options: Any) -> Iterator[Observation]:
        for telemetry in list(self.telemetries):
            yield from telemetry._observe()


_BY_METER: weakref.WeakKeyDictionary[Any, _Instruments] = weakref.WeakKeyDictionary()
_BY_METER_LOCK = threading.Lock()


def _instruments(meter: Any) -> _Instruments:
    with _BY_METER_LOCK:
        found = _BY_METER.get(meter)
        if found is None:
            found = _BY_METER[meter] = _Instruments(meter)
        return found


class BreakerTelemetry:
    """Report breakers to OpenTelemetry (see the module doc).

    `tracer_provider` / `meter_provider`: default the global ones (whatever the
    application configured; the API's no-ops otherwise).

    Cost: the OpenTelemetry SDK spends tens of µs per synchronous measurement, so the
    call path makes none. `resilience.circuit_breaker.calls` is read from the breakers'
    own counters when the SDK collects; each call's duration waits in a list and goes
    into the histogram at the next collection. `pending_durations` bounds that list:
    past it (a reader collecting rarely under heavy load) durations are recorded at
    once, at the SDK's cost. `spans=False` leaves spans alone (metrics only): the SDK
    spends about 3 µs per span attribute set.
    """

    def __init__(self, *, tracer_provider: Any = None, meter_provider: Any = None,
                 pending_durations: int = 16_384, spans: bool = True) -> None:
        self.spans = spans
        if (isinstance(pending_durations, bool) or not isinstance(pending_durations, int)
                or pending_durations < 0):
            raise ValueError(f"pending_durations must be an integer >= 0, "
                             f"got {pending_durations!r}")
        self.pending_durations = pending_durations
        self.tracer = trace.get_tracer("cblab", tracer_provider=tracer_provider)
        instruments = _instruments(metrics.get_meter("cblab", meter_provider=meter_provider))
        instruments.telemetries.add(self)
        self.state = instruments.state
        self.calls = instruments.calls
        self.duration = instruments.duration
        self.transitions = instruments.transitions
        self._local_overloads: dict[str, int] = {}
        self._recounted: dict[str, int] = {}  # excluded calls counted as local_overload
        self._durations: list[tuple[dict[str, str], float]] = []
        self._watches: dict[str, tuple[CircuitBreaker, _Watch]] = {}

    # --- collection -------------------------------------------------------------------

    def _observe(self) -> Iterator[Observation]:
        """The calls counter, read from the breakers' own counts (at collection time).

        Runs before the SDK collects synchronous instruments, so the durations flushed
        here are in the same collection."""
        self._flush_durations()
        for breaker, _ in list(self._watches.values()):
            name = breaker.name
            counts = ((_SUCCESS, breaker.successes), (_FAILURE, breaker.failures),
                      (_EXCLUDED, breaker.excluded - self._recounted.get(name, 0)),
                      (_REJECTED, breaker.rejected),
                      (_CANCELLED, breaker.cancelled), (_LATE, breaker.late),
                      (LOCAL_OVERLOAD, self._local_overloads.get(name, 0)))
            for outcome, count in counts:
                if count:
                    yield Observation(count, {NAME: name, OUTCOME: outcome})

    def _flush_durations(self) -> None:
        pending, self._durations = self._durations, []
        record = self.duration.record
        for attributes, seconds in pending:
            record(seconds, attributes)

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
        breaker.add_listener(listener, on_call=listener.on_call)
        return breaker

    def unwatch(self, breaker: CircuitBreaker) -> None:
        seen = self._watches.pop(breaker.name, None)
        if seen is not None and seen[0] is breaker:
            breaker.remove_listener(seen[1])

    def _state_change(self, change: StateChange) -> None:
        from_state, to_state = change.from_state.value, change.to_state.value
        span = _get_current_span() if self.spans else _NO_SPAN
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

    def local_overload(self, breaker: CircuitBreaker, *, recorded: bool = False) -> None:
        """A call refused as local overload: no bulkhead slot in time, or (`recorded`)
        a call the breaker already recorded as excluded because this process, not the
        dependency, was too slow; it is counted as local_overload only."""
        span = _get_current_span() if self.spans else _NO_SPAN
        if span.is_recording():
            span.set_attributes({NAME: breaker.name, STATE: breaker.state.value,
                                 OUTCOME: LOCAL_OVERLOAD, ERROR_TYPE: LOCAL_OVERLOAD})
            span.set_status(Status(StatusCode.ERROR, f"local overload in front of "
                                   f"{breaker.name!r}"))
        name = breaker.name
        self._local_overloads[name] = self._local_overloads.get(name, 0) + 1
        if recorded:
            self._recounted[name] = self._recounted.get(name, 0) + 1

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


# --- looking at spans (README, notebooks) ---------------------------------------------

class SpanCapture:
    """Finished spans kept in memory by `capture_spans()`."""

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter

    def spans(self) -> list[Any]:
        return list(self._exporter.get_finished_spans())

    def rows(self, kind: str | None = None) -> list[dict[str, Any]]:
        """One dict per span (oldest first): what an operator reads off a trace view.
        `kind`: only SERVER, CLIENT, ... spans."""
        rows = []
        for span in self.spans():
            if kind is not None and span.kind.name != kind:
                continue
            attrs = span.attributes or {}
            changes = [f"{e.attributes['from']}->{e.attributes['to']}"
                       for e in span.events if e.name == STATE_CHANGE]
            rows.append({
                "span": span.name, "kind": span.kind.name,
                "trace": f"{span.context.trace_id:032x}"[:8],
                "breaker": attrs.get(NAME), "state": attrs.get(STATE),
                "outcome": attrs.get(OUTCOME), "error.type": attrs.get(ERROR_TYPE),
                "status": span.status.status_code.name, "state_change": " ".join(changes),
                "duration_ms": ((span.end_time - span.start_time) / 1e6
                                if span.end_time is not None and span.start_time is not None
                                else None),
            })
        return rows


@contextlib.contextmanager
def capture_spans() -> Iterator[SpanCapture]:
    """Keep the spans finished inside the block in memory (OpenTelemetry SDK).

    Uses the global TracerProvider, installing an SDK one first if the application has
    none (a global provider can be set once per process)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # pragma: no cover - set elsewhere, not SDK
        raise RuntimeError(f"the global tracer provider is not the SDK's: {provider!r}")
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    try:
        yield SpanCapture(exporter)
    finally:
        exporter.shutdown()  # a processor cannot be removed: it stops exporting instead


# --- a process without its own OpenTelemetry setup (cblab serve --otel) ---------------

#: `configure_sdk` exporters and the module each one needs.
EXPORTERS = {"console": "opentelemetry.sdk", "otlp": "opentelemetry.exporter.otlp.proto.http"}


def check_exporter(exporter: str) -> None:
    """Raise ImportError (one line naming the package) if `exporter` cannot be used."""
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter must be one of {sorted(EXPORTERS)}, got {exporter!r}")
    try:
        importlib.import_module(EXPORTERS[exporter])
    except ImportError:
        package = ("opentelemetry-exporter-otlp-proto-http" if exporter == "otlp"
                   else "opentelemetry-sdk (pip install 'cblab[otel]')")
        raise ImportError(f"the {exporter} exporter needs {package}") from None


def configure_sdk(exporter: str, *, service_name: str = "cblab") -> None:
    """Global SDK tracer and meter providers sending to `exporter`: ``console`` (stdout)
    or ``otlp`` (OTLP over HTTP to ``$OTEL_EXPORTER_OTLP_ENDPOINT``, default
    localhost:4318). Providers an application (or ``opentelemetry-instrument``) already
    set stay as they are."""
    check_exporter(exporter)
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import (
        ConsoleMetricExporter,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    resource = Resource.create({"service.name": service_name})
    if exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # type: ignore[import-not-found]
            OTLPMetricExporter,
        )
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
            OTLPSpanExporter,
        )

        spans: Any = BatchSpanProcessor(OTLPSpanExporter())
        metric_exporter: Any = OTLPMetricExporter()
    else:  # console: each span as it ends
        spans = SimpleSpanProcessor(ConsoleSpanExporter())
        metric_exporter = ConsoleMetricExporter()
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(spans)
        trace.set_tracer_provider(tracer_provider)
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(metric_exporter)]))


async def traced_calls(url: str, tool: str, arguments: dict[str, Any] | None = None, *,
                       calls: int = 5, config: Any = None,
                       count_error_results: bool = False) -> list[dict[str, Any]]:
    """Call `tool` on the MCP server at `url` `calls` times through a traced
    `GuardedClient` and return the spans of those calls as `SpanCapture.rows` (a
    notebook shows them with ``pandas.DataFrame(await traced_calls(url, "github_user",
    {...}))``). `count_error_results`: the tool's ``isError`` results count as failures
    (by default a tool's error result is a business error, excluded)."""
    if isinstance(calls, bool) or not isinstance(calls, int) or not 1 <= calls <= 1000:
        raise ValueError(f"calls must be an integer in 1..1000, got {calls!r}")
    from fastmcp import Client

    from .client import GuardedClient

    with capture_spans() as captured:
        async with GuardedClient(Client(url), name="traced", config=config,
                                 on_open="result", telemetry=BreakerTelemetry(),
                                 count_error_results=[tool] if count_error_results else ()
                                 ) as guard:
            for _ in range(calls):
                try:
                    await guard.call_tool(tool, arguments or {}, raise_on_error=False)
                except Exception:  # a failure is on its span: that is what is shown
                    pass
    # the guard's spans only: other clients in this process (a notebook's load
    # generator, the MCP SDK's own "MCP send" spans) finish spans meanwhile
    return [row for row in captured.rows(kind="CLIENT") if row["breaker"] is not None
            and str(row["breaker"]).startswith("traced")]
