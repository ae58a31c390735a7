"""OpenTelemetry trace exports (OTLP JSON) -> call rows that `cblab.faults.fit` reads.

An MCP server or client instrumented by the semantic conventions (cblab's own
`cblab.integrations.otel` among them) leaves one span per tool call:
``mcp.method.name = "tools/call"``, the tool in ``gen_ai.tool.name``, the duration
from the span's start and end, and ``error.type`` when it failed. Each such span
becomes a row: ``t`` (seconds from the first span), ``latency``, ``outcome``
(``rejected`` for the breaker's own ``circuit_open``, ``dropped`` for
``local_overload``: neither reached the service), ``error_type`` and ``tool``.
Spans of other methods are skipped; a file with no tool call span is an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["SpanError", "is_otlp", "span_rows"]

METHOD = "mcp.method.name"
TOOL = "gen_ai.tool.name"
ERROR_TYPE = "error.type"
_NOT_SENT = {"circuit_open": "rejected", "local_overload": "dropped"}
_STATUS_ERROR = 2  # OTLP's STATUS_CODE_ERROR


class SpanError(ValueError):
    """The export holds no usable MCP tool call span; the message says why."""


def is_otlp(data: Any) -> bool:
    return isinstance(data, Mapping) and "resourceSpans" in data


def _value(value: Any) -> Any:
    """An OTLP AnyValue's plain value (strings, numbers, booleans)."""
    if not isinstance(value, Mapping):
        return None
    for key in ("stringValue", "intValue", "doubleValue", "boolValue"):
        if key in value:
            return value[key]
    return None


def _attributes(span: Mapping[str, Any]) -> dict[str, Any]:
    items = span.get("attributes") or []
    return {a["key"]: _value(a.get("value")) for a in items
            if isinstance(a, Mapping) and isinstance(a.get("key"), str)}


def _spans(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    out: list[Mapping[str, Any]] = []
    for resource in data.get("resourceSpans") or []:
        for scope in (resource or {}).get("scopeSpans") or []:
            out.extend(s for s in (scope or {}).get("spans") or [] if isinstance(s, Mapping))
    return out


def span_rows(data: Any) -> list[dict[str, Any]]:
    """The MCP tool call spans of an OTLP JSON export, as call rows (by start time)."""
    if not is_otlp(data):
        raise SpanError("not an OTLP JSON trace export (no resourceSpans)")
    calls = []
    spans = _spans(data)
    for span in spans:
        attrs = _attributes(span)
        if attrs.get(METHOD) != "tools/call":
            continue
        try:
            start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
        except (KeyError, TypeError, ValueError):
            raise SpanError(f"span {span.get('spanId', '?')}: no start/end time") from None
        if end < start:
            raise SpanError(f"span {span.get('spanId', '?')}: ends before it starts")
        error = attrs.get(ERROR_TYPE)
        failed = error is not None or (span.get("status") or {}).get("code") == _STATUS_ERROR
        outcome = _NOT_SENT.get(str(error), "failure") if failed else "success"
        calls.append((start, end, attrs.get(TOOL), outcome, error))
    if not calls:
        raise SpanError(f"no MCP tool call spans among {len(spans)} span(s): a call span needs "
                        f"{METHOD} = tools/call (and {TOOL}, {ERROR_TYPE} when it failed)")
    calls.sort(key=lambda c: c[0])
    first = calls[0][0]
    return [{"kind": "call", "source": "otel", "t": (start - first) / 1e9,
             "latency": (end - start) / 1e9, "tool": tool, "outcome": outcome,
             "error_type": None if error is None else str(error)}
            for start, end, tool, outcome, error in calls]
