"""An httpx transport that puts a circuit breaker around any `httpx.AsyncClient`.

    from cblab.integrations import BreakerTransport

    client = httpx.AsyncClient(transport=BreakerTransport(config={"failure_threshold": 5}))

A breaker per host (``host:port``) by default, so one failing dependency does not
block the others the client talks to; ``per="client"`` uses one breaker for every
request. While a breaker refuses, `handle_async_request` raises
`cblab.CircuitOpenError` at once, without touching the network.

=======================================  =================  =============================
what the wrapped transport does           breaker records    the caller gets
=======================================  =================  =============================
answers 429 or 5xx                        failure            the response
answers any other status (2xx-4xx)        success            the response
raises a transport error / timeout        failure            the exception
(connect refused, reset, read timeout)
raises something else                     the `classify`     the exception
                                          table
breaker refuses                           rejected           CircuitOpenError, no request
cancelled                                 cancelled          -
=======================================  =================  =============================

The outcome is recorded when the response body ends (a reset mid-body is a
failure) or is closed. httpx's read timeout is per chunk: bound the whole call
with `asyncio.timeout` (or the middleware's `call_timeout`) if a trickling body
must count as a failure.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal

import httpx

from cblab import BreakerRegistry, CircuitBreakerConfig, CircuitOpenError, ConfigError, Outcome
from cblab._clock import Clock, monotonic

from ._options import as_config
from .classify import ExceptionClassifier, Verdict, as_verdict, classify_exception, classify_status
from .retry import Judgement, RetryPolicy, as_policy, judge_exception, retry_after_header

__all__ = ["BreakerTransport"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


class BreakerTransport(httpx.AsyncBaseTransport):
    """Wrap `transport` (default `httpx.AsyncHTTPTransport()`) with circuit breakers.

    `config`: the default `CircuitBreakerConfig` (or its dict); `configs`: per
    breaker name (a host as ``host:port``, the port left out when it is the
    scheme's default). `per`: ``"host"`` or ``"client"`` (one breaker, named
    `name`). `classify_response`: ``(status) -> Verdict`` (default: 429/5xx fail);
    `classifier`: for exceptions (default: the `classify` table).
    `telemetry`: a `cblab.integrations.otel.BreakerTelemetry` (extra ``cblab[otel]``):
    each request gets a CLIENT span (until its body ends) carrying its breaker's
    attributes and events.
    `retry`: a `RetryPolicy` (or True, or a number of attempts) re-sending requests
    with an idempotent method (`retry_methods`) that failed (429/5xx, transport
    errors); each attempt is one breaker call; ``Retry-After`` is honoured.
    """

    def __init__(
        self,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
        configs: Mapping[str, CircuitBreakerConfig | Mapping[str, Any]] | None = None,
        per: Literal["host", "client"] = "host",
        name: str = "http",
        classify_response: Callable[[int], Verdict] = classify_status,
        classifier: ExceptionClassifier = classify_exception,
        registry: BreakerRegistry | None = None,
        clock: Clock = monotonic,
        telemetry: Any = None,
        retry: RetryPolicy | bool | int | None = None,
        retry_methods: frozenset[str] = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"}),
    ) -> None:
        self.telemetry = telemetry
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise ConfigError(f"transport must be an httpx.AsyncBaseTransport, got {transport!r}")
        if per not in ("host", "client"):
            raise ConfigError(f"per must be 'host' or 'client', got {per!r}")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"name must be a non-empty string, got {name!r}")
        for what, fn in (("classify_response", classify_response), ("classifier", classifier)):
            if not callable(fn):
                raise ConfigError(f"{what} must be callable, got {fn!r}")
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()
        self.config = CircuitBreakerConfig() if config is None else as_config("config", config)
        self.configs = {k: as_config(f"configs[{k!r}]", v) for k, v in (configs or {}).items()}
        self.per = per
        self.name = name
        self.classify_response = classify_response
        self.classifier = classifier
        self.registry = registry if registry is not None else BreakerRegistry(clock=clock)
        self.retry = as_policy("retry", retry)
        self.retry_methods = frozenset(m.upper() for m in retry_methods)

    def breaker_name(self, url: httpx.URL) -> str:
        if self.per == "client":
            return self.name
        port = url.port
        if port is None or port == _DEFAULT_PORTS.get(url.scheme):
            return url.host
        return f"{url.host}:{port}"

    def breaker(self, name: str) -> Any:
        if name in self.registry:
            breaker = self.registry[name]
        else:
            breaker = self.registry.get(name, self.configs.get(name, self.config))
        if self.telemetry is not None:
            self.telemetry.watch(breaker)
        return breaker

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.telemetry is not None:
            return await self.telemetry.traced_request(self._handle, request)  # type: ignore[no-any-return]
        return await self._handle(request)

    async def _handle(self, request: httpx.Request) -> httpx.Response:
        policy = self.retry
        if policy is None or request.method not in self.retry_methods:
            return await self._send_once(request)
        breaker = self.breaker(self.breaker_name(request.url))

        async def attempt() -> httpx.Response:
            response = await self._send_once(request)
            if self.classify_response(response.status_code).outcome is Outcome.FAILURE:
                await response.aread()  # the body stays readable for the caller
                await response.aclose()
                if isinstance(response.stream, _SettlingStream):
                    response.stream._settle()  # recorded now, even for a preloaded body
            return response

        def judge(response: httpx.Response | None, error: BaseException | None) -> Judgement:
            if error is not None:
                return judge_exception(error, self.classifier)
            assert response is not None
            if self.classify_response(response.status_code).outcome is not Outcome.FAILURE:
                return Judgement("success")
            after = (retry_after_header(response.headers.get("retry-after"))
                     if response.status_code in (429, 503) else None)
            return Judgement("failure", after)

        return await policy.call(attempt, judge, key=breaker.name,
                                 breaker_open=lambda: breaker.state.value == "open")

    async def _send_once(self, request: httpx.Request) -> httpx.Response:
        """One attempt: one breaker admission, recorded when the body ends."""
        breaker = self.breaker(self.breaker_name(request.url))
        permit = breaker.admit()
        if not permit.admitted:
            raise CircuitOpenError(breaker.name, permit.retry_after, permit.state)
        try:
            response = await self.transport.handle_async_request(request)
        except BaseException as exc:  # cancelled: frees a half-open slot, counts as nothing
            self._settle_exception(breaker, permit, exc)
            raise
        verdict = self.classify_response(response.status_code)
        # Settle when the body ends: a connection reset mid-body is a failure too.
        response.stream = _SettlingStream(response.stream, self, breaker, permit, verdict)
        return response

    def _settle_exception(self, breaker: Any, permit: Any, exc: BaseException) -> None:
        if not isinstance(exc, Exception):
            breaker.record_exception(permit, exc)
            return
        try:
            verdict = as_verdict(self.classifier(exc))
        except Exception:
            verdict = Verdict(Outcome.FAILURE, type(exc).__name__)
        breaker.record(permit, verdict.outcome, error_type=verdict.error_type)

    def status(self) -> dict[str, dict[str, Any]]:
        """Every breaker's status, by name."""
        return self.registry.status()

    async def aclose(self) -> None:
        await self.transport.aclose()


class _SettlingStream(httpx.AsyncByteStream):
    """The wrapped response body; records the call once, when the body ends or fails."""

    def __init__(self, stream: Any, transport: BreakerTransport, breaker: Any, permit: Any,
                 verdict: Verdict) -> None:
        self._stream = stream
        self._transport = transport
        self._breaker = breaker
        self._permit = permit
        self._verdict = verdict

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except BaseException as exc:
            if not self._permit.settled:
                self._transport._settle_exception(self._breaker, self._permit, exc)
            raise
        self._settle()

    def _settle(self) -> None:
        if not self._permit.settled:
            verdict = self._verdict
            self._breaker.record(self._permit, verdict.outcome, error_type=verdict.error_type)

    async def aclose(self) -> None:
        self._settle()  # closed before the end by the caller: the answer's head decides
        await self._stream.aclose()
