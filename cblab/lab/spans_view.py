"""Notebook 06's click-to-trace view: a few live calls' OpenTelemetry spans as a table.

    from cblab.lab.spans_view import SpansView
    SpansView()          # display it: "Trace 5 calls", "weather service down", a table

Nothing runs until the button is pressed (Run all only draws it): a press starts, once,
a small weather MCP server in the kernel (127.0.0.1, an ephemeral port), then calls it
five times through a traced `GuardedClient` (`cblab.integrations.otel.traced_calls`) in
a background task, so the kernel stays free, and shows each call's CLIENT span: the
guard's breaker, its state when the call was admitted, the outcome, the span's duration
and ``error.type``. With the service down the guard trips on the third failure and the
last two spans say ``rejected`` / ``circuit_open``.

Needs the optional extra ``cblab[otel]``; the widget itself only ipywidgets.
"""

from __future__ import annotations

import asyncio
import html
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COLUMNS", "GUARD_CONFIG", "SpansView", "spans_table_html", "weather_server"]

#: The traced guard's breaker: trips on the third failure, stays open while the rest run.
GUARD_CONFIG = {"failure_threshold": 3, "timeout": 30}

#: Table column -> the `SpanCapture.rows` key it shows.
COLUMNS = {"span": "span", "breaker": "breaker", "state at admission": "state",
           "outcome": "outcome", "duration (ms)": "duration_ms", "error.type": "error.type",
           "state change": "state_change"}


def weather_server(down: Any) -> Any:
    """A one-tool MCP server (`forecast`) whose dependency is down while `down()` is
    true: the tool then answers with an error result (``isError``), as a tool whose
    service is unreachable does."""
    from fastmcp import FastMCP
    from fastmcp.tools import ToolResult

    mcp = FastMCP("weather")

    # no output schema: a client validating structured output would build a model from
    # it on its first call (seconds of kernel time on a busy machine)
    @mcp.tool(output_schema=None)
    def forecast(city: str) -> Any:  # a ToolResult (imported locally: not annotatable)
        """Tomorrow's weather for `city`."""
        if down():
            return ToolResult(content="weather service unreachable", is_error=True)
        return ToolResult(content=f"sunny in {city}")

    return mcp


def spans_table_html(rows: Sequence[Mapping[str, Any]]) -> str:
    """`rows` (as `traced_calls` returns them) as an HTML table, one row per span."""
    head = "".join(f"<th>{html.escape(label)}</th>" for label in COLUMNS)
    body = []
    for row in rows:
        cells = []
        for key in COLUMNS.values():
            value = row.get(key)
            if key == "duration_ms" and value is not None:
                text = f"{value:.1f}"
            else:
                text = "" if value is None else str(value)
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (f"<style>{_STYLE}</style>"
            f'<table class="cblab-spans"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>")


_STYLE = (".cblab-spans { border-collapse: collapse; margin-top: 4px }"
          " .cblab-spans th, .cblab-spans td { padding: 3px 12px; text-align: left;"
          " border-bottom: 1px solid #ddd; white-space: nowrap }")


class SpansView:
    """A "Trace 5 calls" button, a "weather service down" switch and the spans table
    (see the module doc). `url`/`tool`/`arguments`: trace another server's tool instead
    of the built-in weather server (the switch then does nothing)."""

    def __init__(self, *, calls: int = 5, url: str | None = None, tool: str = "forecast",
                 arguments: Mapping[str, Any] | None = None) -> None:
        import ipywidgets as widgets

        if isinstance(calls, bool) or not isinstance(calls, int) or not 1 <= calls <= 100:
            raise ValueError(f"calls must be an integer in 1..100, got {calls!r}")
        self.calls = calls
        self._url = url
        self._tool = tool
        self._arguments = dict(arguments) if arguments is not None else {"city": "Oslo"}
        self._runner: Any = None
        self.task: asyncio.Task[list[dict[str, Any]]] | None = None  # the last press's
        self.rows: list[dict[str, Any]] = []
        self.button = widgets.Button(description=f"Trace {calls} calls", icon="search",
                                     button_style="primary")
        self.down = widgets.Checkbox(value=False, description="weather service down",
                                     indent=False, disabled=url is not None)
        self.status = widgets.HTML("Press the button: nothing runs until then.")
        self.table = widgets.HTML("")
        self.table.add_class("cblab-spans-table")
        self.button.on_click(self._clicked)
        self.widget = widgets.VBox([widgets.HBox([self.button, self.down]), self.status,
                                    self.table])

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _clicked(self, _: Any = None) -> None:
        """Start a trace in the background (a press while one runs is ignored)."""
        if self.task is not None and not self.task.done():
            return
        self.button.disabled = True  # at once: the task starts when the kernel is free
        self.task = asyncio.get_running_loop().create_task(self._trace_quietly())

    async def _trace_quietly(self) -> list[dict[str, Any]]:
        try:
            return await self.trace()
        except Exception:  # `trace` showed it; a task's error would reach no one
            return []

    async def trace(self) -> list[dict[str, Any]]:
        """Trace `calls` calls and show their spans; returns the rows shown."""
        self.button.disabled = True
        self.status.value = f"Tracing {self.calls} calls…"
        try:
            from cblab.integrations.otel import traced_calls  # the extra, checked here

            url = self._url if self._url is not None else await self._weather_url()
            rows = await traced_calls(url, self._tool, self._arguments, calls=self.calls,
                                      config=GUARD_CONFIG, count_error_results=True)
        except Exception as exc:
            self.status.value = (f"<b>Tracing failed:</b> "
                                 f"{html.escape(f'{type(exc).__name__}: {exc}')}")
            raise
        finally:
            self.button.disabled = False
        self.rows = rows
        self.table.value = spans_table_html(rows)
        traces = len({row["trace"] for row in rows})
        self.status.value = (f"{len(rows)} CLIENT spans in {traces} traces (one per call), "
                             "as a trace view shows them:")
        return rows

    async def _weather_url(self) -> str:
        if self._runner is None:
            from cblab.server import ServerRunner

            self._runner = await ServerRunner(weather_server(lambda: self.down.value)).start()
        return str(self._runner.mcp_url)

    async def close(self) -> None:
        """Stop the weather server (if a press started it)."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.stop()
