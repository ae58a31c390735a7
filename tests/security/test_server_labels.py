"""Issue 15 item 1: tool names chosen by a caller cannot grow the server's memory,
its event rows or its /metrics (one `unknown` label, names cut short in rows)."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastmcp import Client

from cblab.server.instrumentation import (
    MAX_TOOL_LABELS,
    MAX_TOOL_NAME_CHARS,
    CallNote,
    Instrumentation,
)
from cblab.stack import Stack


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_label_set_is_bounded_for_known_tools_too() -> None:
    instr = Instrumentation(variant="t", capacity=100, clock=lambda: 0.0)
    for i in range(MAX_TOOL_LABELS + 50):
        instr.record_call(
            tool=f"tool_{i}", started=0.0, ended=0.0, outcome="success", breaker=None,
            state_before=None, note=CallNote(), error_type=None,
        )
    labels = {tool for tool, _ in instr.tool_calls}
    assert len(labels) == MAX_TOOL_LABELS + 1  # the first 256, then "other"
    assert instr.tool_calls[("other", "success")] == 50


async def test_many_distinct_unknown_tool_names_keep_memory_and_metrics_bounded() -> None:
    calls, name_bytes = 120, 256 * 1024
    async with Stack(servers=["protected"]) as stack:
        pid = stack.pid("protected")
        assert pid is not None
        url = stack.server_url("protected")
        async with httpx.AsyncClient(timeout=30) as http, Client(stack.mcp_url("protected"), mode="legacy") as mcp:
            # legacy (2025-11-25): the name travels in the body only, not in a header
            await mcp.call_tool("circuit_status", {}, raise_on_error=False)
            before = _rss_kib(pid)
            for i in range(calls):
                name = f"{i:06d}" + "x" * name_bytes
                result = await mcp.call_tool(name, {}, raise_on_error=False)
                assert result.is_error
            after = _rss_kib(pid)
            metrics = (await http.get(url + "/metrics")).text
            events = (await http.get(url + "/events")).json()["events"]
    sent_kib = calls * name_bytes // 1024
    # today: /metrics holds every name (30 MB) and RSS grows by about what was sent
    assert len(metrics) < 64 * 1024, len(metrics)
    assert 'cblab_tool_calls_total{tool="unknown",outcome="excluded"} 120' in metrics
    assert after - before < sent_kib // 3, (before, after, sent_kib)
    rows = [row for row in events if row["kind"] == "call" and row["error_type"] == "unknown_tool"]
    assert len(rows) == calls
    assert all(len(row["tool"]) <= MAX_TOOL_NAME_CHARS for row in rows)
    assert rows[0]["tool"].startswith("000000xxx")
