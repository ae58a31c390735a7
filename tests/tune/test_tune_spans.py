"""`cblab tune` on an OTLP JSON trace export: MCP tools/call spans become call rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cblab.faults.fit import fit_run
from cblab.tune.cli import main
from cblab.tune.spans import SpanError, span_rows
from tests.tune.traffic import PROFILE, crafted_rows

T0 = 1_700_000_000_000_000_000  # ns


def _attr(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def otlp_export(rows: list[dict[str, Any]], *, mcp: bool = True) -> dict[str, Any]:
    """What an OTLP JSON file exporter writes for these calls (plus one non-call span)."""
    spans = []
    for i, row in enumerate(rows):
        start = T0 + round(row["t"] * 1e9)
        attrs = [_attr("mcp.method.name", "tools/call"), _attr("gen_ai.tool.name", row["tool"])]
        if row["outcome"] != "success":
            attrs.append(_attr("error.type", row["error_type"]))
        spans.append({"traceId": f"{i:032x}", "spanId": f"{i:016x}", "name": "tools/call",
                      "startTimeUnixNano": str(start),
                      "endTimeUnixNano": str(start + round(row["latency"] * 1e9)),
                      "attributes": attrs if mcp else [], "status": {}})
    spans.append({"spanId": "f" * 16, "name": "initialize", "startTimeUnixNano": str(T0),
                  "endTimeUnixNano": str(T0 + 1000),
                  "attributes": [_attr("mcp.method.name", "initialize")]})
    return {"resourceSpans": [{"resource": {"attributes": []},
                               "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]}]}


def _phase_flags() -> list[str]:
    flags, start = [], 0.0
    for name, seconds, *_ in PROFILE:
        flags += ["--phase", f"{name}={start:g}:{start + seconds:g}"]
        start += seconds
    return flags


def test_spans_become_the_same_calls():
    rows = crafted_rows()
    converted = span_rows(otlp_export(rows))
    assert len(converted) == len(rows)  # the initialize span is not a call
    assert [r["outcome"] for r in converted] == [r["outcome"] for r in rows]
    first = rows[0]["t"]
    for mine, theirs in zip(converted, rows, strict=True):
        assert mine["t"] == pytest.approx(theirs["t"] - first, abs=1e-6)
        assert mine["latency"] == pytest.approx(theirs["latency"], abs=1e-6)
        assert mine["tool"] == theirs["tool"]


def test_tune_reads_an_otlp_export_with_given_phases(tmp_path: Path, capsys):
    export = tmp_path / "traces.json"
    export.write_text(json.dumps(otlp_export(crafted_rows())))
    out = tmp_path / "config.json"
    assert main([str(export), *_phase_flags(), "--workers", "1", "--seeds", "1",
                 "--param", "failure_threshold=3,20", "--param", "timeout=5", "-o",
                 str(out)]) == 0
    assert "fitted 3 phase(s)" in capsys.readouterr().out
    # the outage the spans show is the generating profile's
    phases = [(n, s, s + d) for (n, d), s in zip(
        [(p[0], p[1]) for p in PROFILE], (0.0, 30.0, 50.0), strict=True)]
    fit = fit_run(span_rows(otlp_export(crafted_rows())), source=None, phases=phases)
    low, high = fit.phases[1].error_interval
    assert low <= PROFILE[1][3] <= high
    assert json.loads(out.read_text())["failure_threshold"] in (3, 20)


def test_spans_without_mcp_attributes_are_refused(tmp_path: Path, capsys):
    export = tmp_path / "traces.json"
    export.write_text(json.dumps(otlp_export(crafted_rows()[:30], mcp=False)))
    assert main([str(export), "--workers", "1", "--seeds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cblab tune: no MCP tool call spans among 31 span(s)")
    with pytest.raises(SpanError):
        span_rows({"resourceSpans": []})
