"""The live lab: sliders drive faults and breaker settings while plotly charts update.

    from cblab.lab import LiveLab, LabParams

    lab = LiveLab(LabParams.from_env()).start()   # returns at once; the loop runs
    lab                                           # show the panel

One background task (``asyncio.get_running_loop().create_task``) owns everything:
it starts the `Stack` (backend + demo servers) unless one is given, runs a
`LoadGenerator` per server variant, polls each server's ``/events``, applies
slider changes (debounced) through the backend's control API and the server's
admin route, and redraws one `FigureWidget` a few times a second inside
``batch_update()``. The model is `LiveFeed` (no widgets); this module only wires
widgets to it. Stop cancels the task; Export report saves the recorded rows as a
run and writes an HTML report.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import httpx
import ipywidgets as W
import plotly.graph_objects as go

from .. import CircuitBreakerConfig, ConfigError
from ..plots.style import FONT_FAMILY, NO_BREAKER_COLOR, STATE_COLORS
from ..stack import ControlError
from .dashboard import STATE_NAMES, apply_arrays, live_figure
from .feed import LiveFeed
from .params import LabParams

__all__ = ["CONTROL_NAMES", "LiveLab"]

#: Every control a LiveLab can show, in display order.
CONTROL_NAMES = (
    "error_rate",
    "latency_ms",
    "outage",
    "rate",
    "failure_threshold",
    "timeout",
    "half_open_max_calls",
    "success_threshold",
)
_BREAKER_FIELDS = ("failure_threshold", "timeout", "half_open_max_calls", "success_threshold")
_FAULT_FIELDS = ("error_rate", "latency_ms", "outage")
_DEBOUNCE_S = 0.25
_MAX_UNDRAWN = 2  # updates in flight to the browser: enough to pipeline, too few to lag

_CSS = """
<style>
.cblab-live { font-family: FONT; }
.cblab-live .widget-label { font-size: 13px; }
.cblab-live-status { font-size: 13px; line-height: 1.5; }
.cblab-live-status .badge { display: inline-block; padding: 1px 9px; border-radius: 10px;
  color: #fff; font-weight: 600; letter-spacing: .02em; }
.cblab-live-status .muted { color: #6b7280; }
.cblab-config-message { font-size: 13px; min-height: 1.4em; }
.cblab-config-message .bad { color: #b42318; font-weight: 600; }
.cblab-config-message .ok { color: #2f7d4f; }
.cblab-title { font-weight: 700; font-size: 15px; color: #111827; margin: 0 0 4px 4px; }
.cblab-live .cblab-live-chart { width: 100%; min-width: 640px; }
.cblab-group-title { font-weight: 600; font-size: 13px; color: #374151; margin: 2px 0 2px 4px; }
</style>
""".replace("FONT", FONT_FAMILY)


class LiveLab:
    """A live circuit-breaker lab in a notebook. See the module docstring.

    `variants` are server variants to run side by side ("protected" has a breaker,
    "unprotected" has it disabled); `controls` chooses which sliders to show.
    Pass a running `stack` to share one between labs (it is then not stopped).
    """

    def __init__(
        self,
        params: LabParams | None = None,
        *,
        stack: Any = None,
        variants: Sequence[str] = ("protected",),
        controls: Sequence[str] = CONTROL_NAMES,
        service: str = "users",
        tool: str = "github_user",
        breaker: str = "github",
        title: str = "Live lab",
        latency_ms: float = 20.0,
        deadline: float = 2.0,
        config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
        scenario: Any = None,
        time_scale: float | None = None,
    ) -> None:
        self.params = params or LabParams.from_env()
        unknown = set(controls) - set(CONTROL_NAMES)
        if unknown:
            raise ValueError(f"unknown control(s) {sorted(unknown)}; known: {CONTROL_NAMES}")
        if not variants:
            raise ValueError("a LiveLab needs at least one variant")
        self.variants = list(variants)
        self.service, self.tool, self.breaker = service, tool, breaker
        self.title = title
        self.deadline = deadline
        self.stack = stack
        self._own_stack = stack is None
        self.config = CircuitBreakerConfig(
            failure_threshold=self.params.failure_threshold,
            timeout=self.params.breaker_timeout,
            success_threshold=2,
            half_open_max_calls=3,
        )
        if isinstance(config, CircuitBreakerConfig):
            self.config = config
        elif config is not None:
            self.config = self.config.replace(**dict(config))
        # A scenario is played live by the backend from the moment the load starts;
        # by default it is squeezed into CBLAB_RUN_SECONDS when the run is bounded.
        self.scenario = None
        if scenario is not None:
            from ..sim import resolve_scenario

            plan = resolve_scenario(scenario)
            if time_scale is None:
                run = self.params.run_seconds
                time_scale = min(1.0, run / plan.total_duration_s) if run else 1.0
            self.scenario = plan if time_scale == 1 else plan.scaled(time_scale)
            controls = [c for c in controls if c not in _FAULT_FIELDS]
        self.feed = LiveFeed(self.params.window_s, breaker=breaker)
        self.generators: dict[str, Any] = {}
        self.task: asyncio.Task[None] | None = None
        self.error: BaseException | None = None
        self.finished = False
        self.started_at: float | None = None  # loop time at start
        self.first_chart_s: float | None = None  # start() to the first chart with data
        self._start_called: float | None = None
        self.applied: list[tuple[float, str, Any]] = []  # (lab time, control, value) applied
        self._pending: dict[str, tuple[float, Any]] = {}
        self._offsets: dict[str, float] = {}
        self._cursors: dict[str, int] = {}
        self._last: dict[int, tuple[Any, ...]] = {}
        self._autopilot = list(self.params.autopilot)
        self.autopilot_skipped: list[Any] = []  # steps for controls this lab does not have
        self.report_path: Path | None = None
        self.io_errors = 0
        self.last_io_error: str | None = None
        self.skipped_draws = 0  # draws held back while the browser caught up
        self._frontend_seen = False
        self._acked_id = 0
        self._last_draw = 0.0
        self._build_widgets(controls, latency_ms)

    # --- widgets --------------------------------------------------------------------------

    def _build_widgets(self, controls: Sequence[str], latency_ms: float) -> None:
        wide = {"description_width": "170px"}
        layout = W.Layout(width="430px")
        makers: dict[str, Callable[[], W.ValueWidget]] = {
            "error_rate": lambda: W.IntSlider(
                value=0,
                min=0,
                max=100,
                step=5,
                description="backend error rate (%)",
                style=wide,
                layout=layout,
                continuous_update=False,
            ),
            "latency_ms": lambda: W.IntSlider(
                value=int(latency_ms),
                min=0,
                max=3000,
                step=10,
                description="backend latency (ms)",
                style=wide,
                layout=layout,
                continuous_update=False,
            ),
            "outage": lambda: W.ToggleButtons(
                options=[("up", "up"), ("down", "down"), ("hang", "hang")],
                value="up",
                description="backend",
                style={"description_width": "170px", "button_width": "70px"},
                tooltips=["healthy", "refuses connections", "accepts and never answers"],
            ),
            "rate": lambda: W.IntSlider(
                value=int(self.params.rate),
                min=0,
                max=100,
                step=1,
                description="requests per second",
                style=wide,
                layout=layout,
                continuous_update=False,
            ),
            "failure_threshold": lambda: W.IntSlider(
                value=self.config.failure_threshold,
                min=1,
                max=20,
                description="failure_threshold",
                style=wide,
                layout=layout,
                continuous_update=False,
            ),
            "timeout": lambda: W.FloatSlider(
                value=self.config.timeout,
                min=0.5,
                max=60.0,
                step=0.5,
                description="timeout (s)",
                style=wide,
                layout=layout,
                continuous_update=False,
                readout_format=".1f",
            ),
            "half_open_max_calls": lambda: W.IntSlider(
                value=self.config.half_open_max_calls,
                min=1,
                max=10,
                description="half_open_max_calls",
                style=wide,
                layout=layout,
                continuous_update=False,
            ),
            "success_threshold": lambda: W.IntSlider(
                value=self.config.success_threshold,
                min=1,
                max=10,
                description="success_threshold",
                style=wide,
                layout=layout,
                continuous_update=False,
            ),
        }
        self.controls: dict[str, W.ValueWidget] = {}
        for name in CONTROL_NAMES:
            if name not in controls:
                continue
            widget = makers[name]()
            widget.add_class("cblab-" + name.replace("_", "-"))
            widget.observe(
                lambda change, name=name: self._on_control(name, change["new"]), names="value"
            )
            self.controls[name] = widget
        if not any(self._is_protected(v) for v in self.variants):
            for name in _BREAKER_FIELDS:
                self.controls.pop(name, None)

        self.stop_button = W.Button(
            description="Stop", icon="stop", button_style="danger", layout=W.Layout(width="110px")
        )
        self.stop_button.add_class("cblab-stop")
        self.stop_button.on_click(lambda _b: self.stop())
        self.export_button = W.Button(
            description="Export report", icon="file-text-o", layout=W.Layout(width="150px")
        )
        self.export_button.add_class("cblab-export")
        self.export_button.on_click(lambda _b: self._export_clicked())
        self.status = W.HTML(value=self._status_html("Starting the backend and the servers…"))
        self.status.add_class("cblab-live-status")
        self.config_message = W.HTML()
        self.config_message.add_class("cblab-config-message")
        self.export_message = W.HTML()
        self.export_message.add_class("cblab-export-message")
        # The FigureWidget is built by the live task while the stack starts (the first
        # one in a kernel takes seconds), so the cell returns at once.
        self.figure: go.FigureWidget | None = None
        self._chart_box = W.VBox(
            [W.HTML('<i class="cblab-muted">The charts appear when the servers are up…</i>')],
            layout=W.Layout(width="100%"),
        )

        def group(title: str, names: Sequence[str]) -> W.VBox | None:
            members = [self.controls[n] for n in names if n in self.controls]
            if not members:
                return None
            return W.VBox(
                [W.HTML(f'<div class="cblab-group-title">{title}</div>'), *members],
                layout=W.Layout(margin="0 28px 6px 0"),
            )

        groups = [
            g
            for g in (
                group("Backend (the dependency)", ("error_rate", "latency_ms", "outage")),
                group(
                    f"Load and breaker `{self.breaker}`",
                    ("rate", *[n for n in _BREAKER_FIELDS if n in self.controls]),
                ),
            )
            if g is not None
        ]
        self.widget = W.VBox(
            [
                W.HTML(_CSS + f'<div class="cblab-title">{escape(self.title)}</div>'),
                W.HBox(groups, layout=W.Layout(flex_flow="row wrap")),
                self.config_message,
                W.HBox(
                    [self.stop_button, self.export_button, self.export_message],
                    layout=W.Layout(align_items="center"),
                ),
                self.status,
                self._chart_box,
            ]
        )
        self.widget.add_class("cblab-live")

    def _install_figure(self) -> None:
        if self.figure is None:
            self.figure = self._build_figure()
            self.figure.add_class("cblab-live-chart")
            self.figure.observe(self._on_ack, names="_js2py_traceDeltas")
            self._chart_box.children = (self.figure,)

    def _build_figure(self) -> go.FigureWidget:
        fig = live_figure(self.variants, self.breaker, self.feed.x_range)
        if self.scenario is not None:  # shade its fault phases (04's live check)
            from .tuning import shade_faults

            shade_faults(fig, self.scenario, self.service)
        return go.FigureWidget(fig)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> LiveLab:
        """Start the live loop as a background task and return at once."""
        if self.task is not None and not self.task.done():
            return self
        loop = asyncio.get_running_loop()
        self._start_called = loop.time()
        self.task = loop.create_task(self._main(), name="cblab-live-lab")
        return self

    def stop(self) -> None:
        """Stop the loop (the Stop button). The charts keep the last picture."""
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def wait(self) -> dict[str, Any] | None:
        """Headless runs (``CBLAB_WAIT=1``): wait for the bounded loop to end, check the
        states the run had to visit (``CBLAB_EXPECT_STATES``) and return the summary.

        Interactive sessions: returns None at once (waiting would freeze the sliders:
        the kernel holds widget messages while a cell runs).
        """
        if not self.params.wait:
            return None
        if self.task is None:
            raise RuntimeError("the lab was never started: call lab.start()")
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        if self.error is not None:
            raise RuntimeError(f"the live loop failed: {self.error!r}") from self.error
        summary = self.summary()
        for variant in self.variants:
            if not self._is_protected(variant):
                continue
            seen = set(summary.get(variant, {}).get("states_seen", ()))
            missing = set(self.params.expect_states) - seen
            if missing:
                raise AssertionError(
                    f"{variant}: the breaker never went {sorted(missing)} "
                    f"(saw {sorted(seen)}; autopilot {self.params.autopilot})"
                )
        return summary

    def events(self, source: str | None = "server") -> Any:
        """The recorded rows as an event frame (lab time), from one source ("server":
        what the breaker decided, "load": what callers saw) or all (None)."""
        frame = self.feed.recorded_frame()
        if source is not None:
            frame = frame[frame["source"] == source].reset_index(drop=True)
        return frame

    def summary(self) -> dict[str, Any]:
        """Per variant: calls, success rate, outcomes, current state, states seen, trips."""
        out = self.feed.summary()
        for variant in self.variants:
            out.setdefault(variant, {"calls": 0, "states_seen": []})
        out["updates"] = self.feed.update_count
        out["first_chart_s"] = self.first_chart_s
        return out

    # --- controls ------------------------------------------------------------------------

    def set(self, **values: Any) -> None:
        """Move controls from code, exactly as a person would: ``lab.set(error_rate=100)``."""
        for name, value in values.items():
            if name not in self.controls:
                raise KeyError(f"no control {name!r}; this lab has {sorted(self.controls)}")
            self.controls[name].value = value

    def _on_control(self, name: str, value: Any) -> None:
        if name == "rate":
            for gen in self.generators.values():  # no HTTP: at once
                gen.rate = float(value)
            self._log_applied(name, value)
            return
        if name in _BREAKER_FIELDS:
            fields = {n: self.controls[n].value for n in _BREAKER_FIELDS if n in self.controls}
            try:
                self.config.replace(**fields)
            except ConfigError as exc:
                self._say_config(
                    f"Not applied: {exc}. The breaker keeps its last valid settings.", bad=True
                )
                self._pending.pop("breaker", None)
                return
            self._say_config("applying…")
            self._pending["breaker"] = (time.monotonic(), fields)
            return
        self._pending[name] = (time.monotonic(), value)

    def _say_config(self, text: str, *, bad: bool = False) -> None:
        cls = "bad" if bad else "ok"
        self.config_message.value = f'<span class="{cls}">{escape(text)}</span>'

    def _log_applied(self, name: str, value: Any) -> None:
        self.applied.append((self._lab_now(), name, value))
        del self.applied[:-200]

    async def _apply_pending(self, *, force: bool = False) -> None:
        now = time.monotonic()
        due = [
            (k, at, v) for k, (at, v) in self._pending.items() if force or now - at >= _DEBOUNCE_S
        ]
        for key, at, value in due:
            backend = self.stack.backend
            if key == "error_rate":
                await backend.apatch_faults(self.service, error_rate=value / 100.0)
            elif key == "latency_ms":
                await backend.apatch_faults(self.service, latency=_latency(value))
            elif key == "outage":
                await backend.apatch_faults(self.service, mode=value)
            elif key == "breaker":
                await self._apply_breaker(value)
            if self._pending.get(key, (None,))[0] == at:  # not moved again meanwhile
                del self._pending[key]
            if key != "breaker":
                self._log_applied(key, value)

    async def _apply_breaker(self, fields: dict[str, Any]) -> None:
        try:
            config = self.config.replace(**fields)
        except ConfigError as exc:
            self._say_config(f"Not applied: {exc}", bad=True)
            return
        try:
            for variant in self.variants:
                if self._is_protected(variant):
                    await self.stack.server(variant).aconfigure_breaker(self.breaker, **fields)
        except ControlError as exc:
            self._say_config(f"Not applied: {exc.detail if exc.detail else exc}", bad=True)
            return
        self.config = config
        shown = ", ".join(f"{k}={v:g}" for k, v in fields.items())
        self._say_config(f"✓ applied: {shown}")
        self._log_applied("breaker", dict(fields))

    def _is_protected(self, variant: str) -> bool:
        return not variant.startswith("unprotected")

    # --- the loop --------------------------------------------------------------------------

    def _lab_now(self) -> float:
        if self.started_at is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.started_at

    async def _main(self) -> None:
        params = self.params
        loop = asyncio.get_running_loop()
        starting = loop.create_task(self._start_stack())
        try:
            await asyncio.sleep(0.05)  # let the processes start in their thread, then
            self._install_figure()  # build the charts meanwhile
            await starting
            from ..load import LoadGenerator

            for variant in self.variants:
                self.generators[variant] = LoadGenerator(
                    self.stack.mcp_url(variant),
                    self.tool,
                    rate=float(
                        self.controls["rate"].value if "rate" in self.controls else params.rate
                    ),
                    variant=variant,
                    seed=params.seed,
                    deadline=max(self.deadline * 2.5, 5.0),
                    window=2_000,
                )
            duration = params.run_seconds or 10.0**9
            runs = [loop.create_task(g.run(duration=duration)) for g in self.generators.values()]
            await self._connected(runs)
            # The lab's clock (charts, autopilot, CBLAB_RUN_SECONDS, the scenario) starts
            # when every generator's MCP client is connected and its first call is due.
            self.started_at = loop.time()
            if self.scenario is not None:
                await self.stack.backend.aplay_scenario(self.scenario.to_dict())
            try:
                await self._loop(runs)
            finally:
                for gen in self.generators.values():
                    gen.stop()
                if runs:
                    await asyncio.wait(runs, timeout=self.deadline * 3)
                for run in runs:
                    run.cancel()
            await self._poll()
            self._draw()
            self.finished = True
            self.status.value = self._status_html(
                "Finished." if self.scenario is None else
                f"Finished: the {self.scenario.total_duration_s:g} s scenario has ended.")
        except asyncio.CancelledError:
            if not starting.done():
                starting.cancel()
            self.status.value = self._status_html("Stopped.")
            raise
        except Exception as exc:
            self.error = exc
            self.status.value = self._status_html(f"The live loop failed: {exc!r}", bad=True)
        finally:
            if self._own_stack and self.stack is not None:
                with contextlib.suppress(Exception):
                    await self.stack.astop()
            self.stop_button.disabled = True

    async def _connected(self, runs: list[asyncio.Task[Any]], timeout: float = 60.0) -> None:
        """Wait until every generator has opened its MCP client and started its clock."""
        deadline = asyncio.get_running_loop().time() + timeout
        while any(g.start_monotonic is None for g in self.generators.values()):
            for run in runs:
                if run.done():
                    run.result()  # raises what stopped it
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"the load generators did not connect within {timeout:g} s")
            await asyncio.sleep(0.02)

    async def _start_stack(self) -> None:
        if self.stack is None:
            from ..stack import Stack

            servers = {v: {"protected": self._is_protected(v)} for v in self.variants}
            self.stack = Stack(
                servers,
                seed=self.params.seed,
                deadline=self.deadline,
                github=self._config_dict(),
                database=None,
            )
            await self.stack.astart()
        else:
            for variant in self.variants:
                if self._is_protected(variant):
                    await self.stack.server(variant).areplace_breaker_config(
                        self.breaker, self._config_dict()
                    )
        # The backend starts where the sliders are.
        fault: dict[str, Any] = {"mode": "up", "error_rate": 0.0, "latency": _latency(20.0)}
        if "error_rate" in self.controls:
            fault["error_rate"] = self.controls["error_rate"].value / 100.0
        if "latency_ms" in self.controls:
            fault["latency"] = _latency(self.controls["latency_ms"].value)
        if "outage" in self.controls:
            fault["mode"] = self.controls["outage"].value
        await self.stack.backend.aset_faults(self.service, **fault)
        for variant in self.variants:  # a shared stack has history: start after it
            reply = await self.stack.server(variant).aevents(after=0)
            self._cursors[variant] = int(reply["last_seq"])

    def _config_dict(self) -> dict[str, Any]:
        c = self.config
        return {
            "failure_threshold": c.failure_threshold,
            "timeout": c.timeout,
            "half_open_max_calls": c.half_open_max_calls,
            "success_threshold": c.success_threshold,
        }

    async def _loop(self, runs: list[asyncio.Task[Any]]) -> None:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.params.update_hz
        next_tick = loop.time()
        run_seconds = self.params.run_seconds
        failures = 0
        while True:
            elapsed = self._lab_now()
            self._play_autopilot(elapsed)
            try:
                await self._apply_pending()
                await self._poll()
                failures = 0
            except (httpx.HTTPError, ControlError) as exc:
                # One bad answer (a keep-alive connection closed under us, a busy
                # server) must not end the lab; a server that stays away does.
                failures += 1
                self.io_errors += 1
                self.last_io_error = f"{type(exc).__name__}: {exc}"
                if failures >= 25:
                    raise
            self._draw()
            if run_seconds and elapsed >= run_seconds:
                return
            for run in runs:
                if run.done() and run.exception() is not None:
                    raise run.exception()  # type: ignore[misc]
            next_tick += period
            delay = next_tick - loop.time()
            if delay < 0:  # fell behind: do not try to catch up with a burst
                next_tick, delay = loop.time(), 0.0
            await asyncio.sleep(delay)

    def _play_autopilot(self, elapsed: float) -> None:
        while self._autopilot and self._autopilot[0].at <= elapsed:
            step = self._autopilot.pop(0)
            value = step.value
            control = self.controls.get(step.control)
            if control is None:
                # One CBLAB_AUTOPILOT may serve several labs: skip what this one lacks.
                self.autopilot_skipped.append(step)
                continue
            if isinstance(control, W.IntSlider):
                value = round(float(value))
            elif isinstance(control, W.FloatSlider):
                value = float(value)
            control.value = value

    async def _poll(self) -> None:
        loop = asyncio.get_running_loop()
        assert self.started_at is not None
        for variant in self.variants:
            reply = await self.stack.server(variant).aevents(
                after=self._cursors[variant], limit=5_000
            )
            lab_now = loop.time() - self.started_at
            # Server rows count from the server's start: estimate the shift once per
            # poll and keep the smallest (the one with the least network delay in it).
            guess = lab_now - float(reply["now"])
            offset = min(self._offsets.get(variant, guess), guess)
            self._offsets[variant] = offset
            self._cursors[variant] = reply["last_seq"]
            self.feed.missed += int(reply.get("missed") or 0)
            self.feed.add(reply["events"], offset=offset)
        for variant, gen in self.generators.items():
            rows, cursor, missed = gen.since(self._cursors.get(f"load:{variant}", 0))
            self._cursors[f"load:{variant}"] = cursor
            self.feed.missed += missed
            if gen.start_monotonic is not None:
                self.feed.add(rows, offset=gen.start_monotonic - self.started_at)
        self.feed.advance(loop.time() - self.started_at)

    def _on_ack(self, change: dict[str, Any]) -> None:
        """The browser drew an update: plotly's frontend sends back its trace edit id."""
        message = change["new"]
        if message:
            self._acked_id = max(self._acked_id, int(message.get("trace_edit_id") or 0))
            self._frontend_seen = True

    def _browser_behind(self, fig: go.FigureWidget) -> bool:
        """True while the browser has more than `_MAX_UNDRAWN` updates still to draw.

        Every update is a redraw in the browser; a slow one (a busy laptop, software
        rendering) would otherwise build a backlog that delays everything queued
        behind it, slider messages included. Headless runs never acknowledge, so
        pacing starts with the first acknowledgement, and a draw is never held back
        for more than 2 s.
        """
        in_flight = fig._last_trace_edit_id - self._acked_id
        if not self._frontend_seen or in_flight <= _MAX_UNDRAWN:
            return False
        if time.perf_counter() - self._last_draw >= 2.0:
            return False
        self.skipped_draws += 1
        return True

    def _draw(self) -> None:
        fig = self.figure
        if fig is None:
            return
        if self._browser_behind(fig):
            self.status.value = self._status_html()
            return
        began = time.perf_counter()
        arrays = self.feed.arrays()
        with fig.batch_update():
            apply_arrays(fig, arrays, self._last, legend_variant=self.variants[0])
            fig.update_xaxes(range=list(self.feed.x_range))
        self._last_draw = time.perf_counter()
        self.feed.mark_update(self._last_draw - began)
        if self.first_chart_s is None and self._start_called is not None and any(
            xy.x for xy in arrays["latency"].values()
        ):
            self.first_chart_s = asyncio.get_running_loop().time() - self._start_called
        self.status.value = self._status_html()

    # --- status and export ----------------------------------------------------------------

    def _status_html(self, note: str | None = None, *, bad: bool = False) -> str:
        parts = []
        summary = self.feed.summary()
        for variant in self.variants:
            info = summary.get(variant, {})
            state = info.get("state") or "closed"
            colour = STATE_COLORS.get(state, NO_BREAKER_COLOR)
            label = STATE_NAMES.get(state, state)
            if not self._is_protected(variant):
                label, colour = "no breaker", "#6b7280"
            rate = info.get("success_rate")
            gen = self.generators.get(variant)
            in_flight = gen.in_flight if gen is not None else 0
            parts.append(
                f'<b>{escape(variant)}</b> <span class="badge" data-state="{state}" '
                f'style="background:{colour}">{label}</span> '
                f'<span class="muted">calls {info.get("calls", 0)} · success '
                f"{'–' if rate is None else f'{rate:.0%}'} · in flight {in_flight} · "
                f"trips {info.get('trips', 0)}</span>"
            )
        elapsed = self._lab_now() if self.started_at is not None else 0.0
        tail = (
            f'<span class="muted">{elapsed:.0f} s · {self.feed.update_rate():.1f} '
            f"chart updates/s</span>"
        )
        line = " &nbsp;│&nbsp; ".join([*parts, tail])
        if note:
            colour = "#b42318" if bad else "#374151"
            line = f'<span style="color:{colour};font-weight:600">{escape(note)}</span> ' + line
        return line

    def _export_clicked(self) -> None:
        self.export_message.value = "<i>writing the report…</i>"
        try:
            path = self.export_report()
        except Exception as exc:
            self.export_message.value = (
                f'<span style="color:#b42318">Export failed: {escape(str(exc))}</span>'
            )
            return
        self.export_message.value = (
            f'Report: <a href="{escape(_relative_link(path))}" target="_blank">'
            f"{escape(str(path))}</a>"
        )

    def export_report(self, directory: str | Path | None = None) -> Path:
        """Save the recorded rows as a run (`cblab.runs.save_run`) and write its HTML
        report; returns the report's path. Default directory: ``reports/`` here."""
        from . import export

        self.report_path = export.export_live_run(self, directory)
        return self.report_path

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        state = (
            "finished"
            if self.finished
            else "running"
            if self.task and not self.task.done()
            else "idle"
        )
        return f"LiveLab(variants={self.variants}, {state})"


def _latency(ms: float) -> dict[str, Any]:
    ms = float(ms)
    return {"kind": "normal", "mean_ms": ms, "sd_ms": round(ms * 0.15, 3)}


def _relative_link(path: Path) -> str:
    """A link JupyterLab can open: relative to the notebook's directory when possible."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()
