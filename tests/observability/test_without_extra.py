"""Without the `otel` extra nothing changes: cblab runs and imports no OpenTelemetry,
and asking for `cblab.integrations.otel` says which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

BLOCK = """
import importlib.abc, sys

class Block(importlib.abc.MetaPathFinder):  # these packages are not installed
    def find_spec(self, name, path=None, target=None):
        if any(name == p or name.startswith(p + ".") for p in {blocked!r}):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
"""


def run(blocked: tuple[str, ...], code: str) -> subprocess.CompletedProcess[str]:
    script = BLOCK.format(blocked=blocked) + textwrap.dedent(code)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "FASTMCP_ENABLE_RICH_TRACEBACKS": "false"}
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=120)


def test_core_and_rules_without_opentelemetry_at_all() -> None:
    done = run(("opentelemetry",), """
        import asyncio, sys
        import cblab, cblab.integrations
        from cblab.integrations.ops import RULES, DASHBOARD
        breaker = cblab.CircuitBreaker("dep", cblab.CircuitBreakerConfig(failure_threshold=1))

        async def ok():
            return 1

        async def fail():
            raise OSError("down")

        assert asyncio.run(breaker.call(ok)) == 1
        try:
            asyncio.run(breaker.call(fail))
        except OSError:
            pass
        assert breaker.state == "open" and RULES.is_file() and DASHBOARD.is_file()
        assert not [m for m in sys.modules if m.startswith("opentelemetry")]
        try:
            import cblab.integrations.otel
        except ImportError as exc:
            print(exc)
        else:
            raise SystemExit("imported without opentelemetry")
    """)
    assert done.returncode == 0, done.stderr
    assert "pip install 'cblab[otel]'" in done.stdout


def test_middleware_without_the_sdk_emits_nothing_and_loads_no_otel_module() -> None:
    # fastmcp itself needs the OpenTelemetry API; the extra adds the SDK.
    done = run(("opentelemetry.sdk",), """
        import asyncio, sys
        from fastmcp import Client, FastMCP
        from opentelemetry import trace
        from cblab.integrations import CircuitBreakerMiddleware

        mcp = FastMCP("plain")
        seen = []

        @mcp.tool
        def lookup() -> str:
            seen.append(trace.get_current_span().is_recording())
            return "ok"

        middleware = CircuitBreakerMiddleware().install(mcp)

        async def main():
            async with Client(mcp) as client:
                for _ in range(3):
                    assert (await client.call_tool("lookup", {})).data == "ok"

        asyncio.run(main())
        assert seen == [False, False, False], seen  # no span records anything
        assert middleware.registry["lookup"].calls == 3
        breaker = middleware.registry["lookup"]
        assert not breaker._listeners and breaker._on_call is None  # no telemetry hook
        assert "cblab.integrations.otel" not in sys.modules
        assert not [m for m in sys.modules if m.startswith("opentelemetry.sdk")]
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
