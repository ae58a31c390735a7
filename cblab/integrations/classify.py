"""What counts against a breaker: one table for the middleware, the transport and the guard.

A classifier turns how a call ended into a `Verdict` (a breaker `Outcome` plus an
error code for the event rows). The default one walks an exception's cause chain
(``__cause__``, else ``__context__`` unless suppressed by ``raise ... from None``),
because FastMCP wraps whatever a tool raises in a `ToolError` whose ``__cause__``
is the original, e.g. ToolError -> httpx.ConnectError -> ConnectionRefusedError.
The first link the table knows decides:

=================================================  ===========  =========================
link in the chain                                   outcome      error_type
=================================================  ===========  =========================
`DependencyError` (raised or chained by a tool)     failure      its `error_type`
httpx/httpx2 `TimeoutException`, `TimeoutError`     failure      class name
httpx/httpx2 `TransportError` (connect, read,       failure      class name
reset, protocol), `ConnectionError`, `EOFError`
httpx/httpx2 `HTTPStatusError` 429 or 5xx           failure      ``http_<status>``
`HTTPStatusError` other status (the dependency      excluded     ``http_<status>``
answered; the tool chose to fail)
MCP `MCPError` (a dependency that is an MCP         by code      see `classify_mcp_error`
server: its client's errors)
`CircuitOpenError` from an inner breaker            failure      ``CircuitOpenError``
(e.g. a `BreakerTransport` inside the tool)
FastMCP / pydantic `ValidationError` (arguments)    excluded     ``ValidationError``
only `ToolError`s: raised on purpose                excluded     ``tool_error``
anything else (the tool crashed for a reason        failure      class name
nobody recognised; see `Classifier(unknown=...)`)
=================================================  ===========  =========================

HTTP responses (the transport) use `classify_status`: 429 and 5xx are failures,
every other status is a success (the dependency answered). Cancellation is never
classified: it releases the breaker's slot as ``cancelled``.

Override by passing a callable ``(exception) -> Verdict`` (or an `Outcome`), or
a `Classifier` with extra types; see the `classifier=` option of each integration.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from cblab import CircuitOpenError, Outcome

__all__ = [
    "Classifier",
    "DependencyError",
    "ExceptionClassifier",
    "Verdict",
    "classify_exception",
    "classify_mcp_error",
    "classify_status",
    "exception_chain",
]


class Verdict(NamedTuple):
    """How a call counts: `outcome` (success, failure or excluded) and an error code."""

    outcome: Outcome
    error_type: str | None = None


ExceptionClassifier = Callable[[BaseException], "Verdict | Outcome"]

SUCCESS = Verdict(Outcome.SUCCESS)


class DependencyError(Exception):
    """Raise (or chain: ``raise ToolError(msg) from DependencyError(...)``) to count a
    failure no exception shows, such as a malformed answer. `error_type` names it."""

    def __init__(self, message: str, error_type: str = "dependency_error") -> None:
        super().__init__(message)
        self.error_type = error_type


def _httpx_modules() -> list[Any]:
    modules = []
    for name in ("httpx", "httpx2"):  # fastmcp's client side uses the httpx2 fork
        try:
            modules.append(__import__(name))
        except ImportError:
            pass
    return modules


_HTTPX = _httpx_modules()
_TIMEOUTS: tuple[type[BaseException], ...] = (
    TimeoutError, *(m.TimeoutException for m in _HTTPX))
_TRANSPORT: tuple[type[BaseException], ...] = (
    ConnectionError, EOFError, *(m.TransportError for m in _HTTPX))
_STATUS: tuple[type[BaseException], ...] = tuple(m.HTTPStatusError for m in _HTTPX)
_COUNTED = (*_TIMEOUTS, *_TRANSPORT, CircuitOpenError)


def _validation_errors() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = []
    try:
        from fastmcp.exceptions import ToolError, ValidationError

        found.append(ValidationError)
        global _TOOL_ERROR
        _TOOL_ERROR = ToolError
    except ImportError:
        pass
    try:
        from pydantic import ValidationError as PydanticValidationError

        found.append(PydanticValidationError)
    except ImportError:
        pass
    return tuple(found)


_TOOL_ERROR: type[BaseException] | None = None
_VALIDATION = _validation_errors()


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then its cause (or unsuppressed context), and so on; each link once."""
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield link
        if link.__cause__ is not None:
            link = link.__cause__
        elif link.__suppress_context__:
            link = None
        else:
            link = link.__context__


try:
    from mcp.shared.exceptions import MCPError as _MCPError
except ImportError:  # pragma: no cover - other mcp versions, or no mcp at all
    _MCPError = None  # type: ignore[assignment,misc]

_MCP_FAILED = {-32001: "request_timeout", -32603: "internal_error"}
_RATE_LIMITED = re.compile(r"\b429\b|too many requests|rate.?limit", re.IGNORECASE)


def is_local_connection_closed(exc: BaseException) -> bool:
    """The SDK's own "Connection closed" (-32000, never sent on the wire): the session died."""
    return (_MCPError is not None and isinstance(exc, _MCPError)
            and exc.error.code == -32000 and exc.error.data is None
            and exc.error.message == "Connection closed")


def is_session_terminated(exc: BaseException) -> bool:
    """The server answered 404 to our session id: it restarted and forgot the session."""
    return (_MCPError is not None and isinstance(exc, _MCPError)
            and exc.error.message == "Session terminated")


def is_stream_broken(exc: BaseException) -> bool:
    """The response stream of a call in flight broke (HTTP): the call may or may not have run."""
    return (_MCPError is not None and isinstance(exc, _MCPError)
            and exc.error.code == -32000 and exc.error.data is None
            and "stream" in exc.error.message.lower())


def _http_status(error: Any) -> int | None:
    """The HTTP status a JSON-RPC error stands for: ``data.status``, or a 429 in the text."""
    data = error.data
    if isinstance(data, dict):
        status = data.get("status", data.get("http_status"))
        if isinstance(status, int) and not isinstance(status, bool) and 100 <= status <= 599:
            return status
    if isinstance(error.message, str) and _RATE_LIMITED.search(error.message):
        return 429
    return None


def classify_mcp_error(exc: BaseException) -> Verdict | None:
    """An MCP client's error by what it means (None: not an `MCPError`).

    The SDK's own "Connection closed" is ``connection_closed``, a forgotten session
    ``session_terminated``, a response stream broken mid-call ``stream_broken`` (the call
    may have run: a failure, never a success); an error standing for an HTTP status
    (``data.status``, or 429 / "too many requests" in the message, as a rate limit sent
    as -32000) is ``http_<status>`` like `classify_status`; -32001 (request timeout),
    -32603 (internal error) and other server errors (-32000..-32019) fail; any other
    JSON-RPC error (invalid params, unknown method: the request was wrong) is excluded.
    """
    if _MCPError is None or not isinstance(exc, _MCPError):
        return None
    if is_local_connection_closed(exc):
        return Verdict(Outcome.FAILURE, "connection_closed")
    if is_session_terminated(exc):
        return Verdict(Outcome.FAILURE, "session_terminated")
    if is_stream_broken(exc):
        return Verdict(Outcome.FAILURE, "stream_broken")
    code = exc.error.code
    status = _http_status(exc.error)
    if status is not None:
        verdict = classify_status(status)
        return verdict if verdict.outcome is Outcome.FAILURE else Verdict(
            Outcome.EXCLUDED, f"http_{status}")
    name = _MCP_FAILED.get(code)
    if name is not None:
        return Verdict(Outcome.FAILURE, name)
    if -32019 <= code <= -32000:  # implementation-defined server errors
        return Verdict(Outcome.FAILURE, "server_error")
    return Verdict(Outcome.EXCLUDED, f"jsonrpc_{code}")


def classify_status(status: int) -> Verdict:
    """An HTTP answer: 429 and 5xx are the dependency failing; anything else, it answered."""
    if status == 429 or status >= 500:
        return Verdict(Outcome.FAILURE, f"http_{status}")
    return SUCCESS


class Classifier:
    """The default exception classifier (see the module table), with extra types.

    `failures`: more exception types that count (say ``redis.ConnectionError``);
    `excluded`: types that never count (say your own ``NotFound``);
    `unknown`: the outcome for exceptions nothing recognises (default failure).
    """

    def __init__(
        self,
        *,
        failures: tuple[type[BaseException], ...] = (),
        excluded: tuple[type[BaseException], ...] = (),
        unknown: Outcome = Outcome.FAILURE,
    ) -> None:
        for name, types in (("failures", failures), ("excluded", excluded)):
            if not isinstance(types, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in types
            ):
                raise TypeError(f"{name} must be a tuple of exception classes, got {types!r}")
        if unknown not in (Outcome.FAILURE, Outcome.EXCLUDED, Outcome.SUCCESS):
            raise ValueError(f"unknown must be failure, excluded or success, got {unknown!r}")
        self.failures = failures
        self.excluded = excluded
        self.unknown = unknown

    def __call__(self, exc: BaseException) -> Verdict:
        tool_error = _TOOL_ERROR
        unknown: BaseException | None = None
        for link in exception_chain(exc):
            if isinstance(link, DependencyError):
                return Verdict(Outcome.FAILURE, link.error_type)
            if self.excluded and isinstance(link, self.excluded):
                return Verdict(Outcome.EXCLUDED, type(link).__name__)
            if self.failures and isinstance(link, self.failures):
                return Verdict(Outcome.FAILURE, type(link).__name__)
            if isinstance(link, _STATUS):
                status = link.response.status_code  # type: ignore[attr-defined]
                verdict = classify_status(status)
                if verdict.outcome is Outcome.FAILURE:
                    return verdict
                return Verdict(Outcome.EXCLUDED, f"http_{status}")
            if isinstance(link, _COUNTED):
                return Verdict(Outcome.FAILURE, type(link).__name__)
            mcp_verdict = classify_mcp_error(link)
            if mcp_verdict is not None:
                return mcp_verdict
            if isinstance(link, _VALIDATION):
                return Verdict(Outcome.EXCLUDED, "ValidationError")
            if unknown is None and not (tool_error is not None and isinstance(link, tool_error)):
                unknown = link
        if unknown is None:  # only ToolErrors: raised on purpose
            return Verdict(Outcome.EXCLUDED, "tool_error")
        return Verdict(self.unknown, type(unknown).__name__)


#: The default classifier: the module table as it stands.
classify_exception = Classifier()


def as_verdict(value: Verdict | Outcome | str) -> Verdict:
    """Accept what a user classifier may return: a Verdict, an Outcome or its value."""
    if isinstance(value, Verdict):
        return value
    outcome = Outcome(value)
    if outcome not in (Outcome.SUCCESS, Outcome.FAILURE, Outcome.EXCLUDED):
        raise ValueError(f"a classifier must answer success, failure or excluded, got {value!r}")
    return Verdict(outcome)
