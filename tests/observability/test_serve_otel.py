"""`cblab serve --otel console`: the demo server's spans carry the breakers, printed by
the console exporter; a missing exporter is one clear line and exit 2."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from fastmcp import Client

from .cli_process import cblab, ready


def serve(*args: str) -> subprocess.Popen[str]:
    return cblab("serve", "--port", "0", *args)


async def test_console_spans_name_the_breaker(tmp_path: Path) -> None:
    ready_file = tmp_path / "ready.json"
    server = serve("--otel", "console", "--ready-file", str(ready_file))
    try:
        async with Client((await ready(server, ready_file))["mcp_url"]) as client:
            result = await client.call_tool("github_user", {"username": "octocat"})
            assert result.data["login"] == "octocat"
    finally:
        server.terminate()
        out, _ = server.communicate(timeout=30)
    spans = [json.loads(chunk) for chunk in _json_objects(out)]
    (call,) = [s for s in spans if s.get("name") == "tools/call github_user"]
    assert call["kind"] == "SpanKind.SERVER"
    assert call["attributes"]["resilience.circuit_breaker.name"] == "github"
    assert call["attributes"]["resilience.circuit_breaker.state"] == "closed"
    assert call["attributes"]["resilience.circuit_breaker.outcome"] == "success"
    assert call["resource"]["attributes"]["service.name"] == "cblab-serve"
    # the metrics, exported once more as the server shuts down
    points = [(p["attributes"], p["value"])
              for export in spans if "resource_metrics" in export
              for r in export["resource_metrics"] for sm in r["scope_metrics"]
              for m in sm["metrics"] if m["name"] == "resilience.circuit_breaker.calls"
              for p in m["data"]["data_points"]]
    assert ({"resilience.circuit_breaker.name": "github",
             "resilience.circuit_breaker.outcome": "success"}, 1) in points


def _json_objects(text: str) -> list[str]:
    """The console exporter's pretty-printed JSON objects, among the server's lines."""
    objects, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "{":
            if depth == 0:
                start = i
            depth += 1
        elif char == "}" and depth:
            depth -= 1
            if depth == 0:
                objects.append(text[start:i + 1])
    return objects


def test_otlp_without_its_exporter_is_one_line_and_exit_2() -> None:
    server = serve("--otel", "otlp")
    _, err = server.communicate(timeout=120)
    assert server.returncode == 2
    assert err.strip().splitlines() == [
        "cblab serve: --otel otlp: the otlp exporter needs opentelemetry-exporter-otlp-proto-http"]
