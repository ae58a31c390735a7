"""The live lab's view: controls, status line and one live chart over a `LabSession`.

    from cblab.lab import LiveLab, LabParams

    lab = LiveLab(LabParams.from_env()).start()   # returns at once; the session runs
    lab                                           # show the panel

The session (`cblab.lab.session`, no widgets) runs load, polling and control
changes on the lab's own event loop in its own thread. This module only builds
widgets from the control table (`cblab.lab.controls`), forwards their changes
to the session, and redraws a `FigureWidget` a few times a second from a task on
the kernel's loop, paced by what the browser has drawn (`cblab.lab.pacing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import traceback
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as W
import plotly.graph_objects as go

from .. import CircuitBreakerConfig
from ..demo import LAB_ROUTE
from ..plots.style import FONT_FAMILY, NO_BREAKER_COLOR, STATE_COLORS
from .controls import BREAKER_FIELDS, CONTROL_NAMES, ControlSpec, spec
from .dashboard import STATE_NAMES, LiveChart, live_figure
from .pacing import DrawPacer
from .params import LabParams
from .session import LabSession
from .whole_widget import WholeFigureWidget

if TYPE_CHECKING:
    import pandas as pd

    from ..faults import Scenario
    from ..stack import Stack
    from .target import LabTarget

__all__ = ["CONTROL_NAMES", "LiveLab", "build_control"]

_LABEL_WIDTH = "170px"
_STATUS_EVERY_S = 1.0  # the status line's refresh when no breaker changed state
_MIN_WAKE_S = 0.02  # the view loop's shortest sleep
_TRACE = os.environ.get("CBLAB_LAB_TRACE") == "1"
# A chart the browser drew blank or stopped drawing is shown anew (a new view of the
# same widget, `LiveLab._check_first_draw`); after these, the person is told.
_MAX_CHART_REBUILDS = 3


def _trace(text: str) -> None:
    """With CBLAB_LAB_TRACE=1, the view's steps go to the kernel's own stderr (which
    the Jupyter server logs): what a chart that does not come was waiting for."""
    if _TRACE:
        print(f"[cblab-lab {time.strftime('%H:%M:%S')}] {text}", file=sys.__stderr__, flush=True)

# The last rule: the page's other plotly charts are painted only near the screen.
# Chromium re-layerizes every painted chart marker (a transform node each) whenever
# the live chart redraws: 55 ms per redraw in 01 for its 3,256-point chart below the
# lab, 11 ms with that chart skipped off-screen (traced in Chromium).
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
.cblab-live .widget-toggle-buttons > .widget-label { text-align: right; margin-right: 8px; }
.cblab-group-title code { font-size: 12px; background: #f3f4f6; padding: 0 4px; border-radius: 3px; }
.cblab-live .cblab-ended .noUi-handle, .cblab-live .cblab-ended .widget-readout { opacity: .45; }
.jp-RenderedPlotly.js-plotly-plot { content-visibility: auto; contain-intrinsic-size: auto 450px; }
</style>
""".replace("FONT", FONT_FAMILY)


def build_control(s: ControlSpec, value: Any) -> W.ValueWidget:
    """The widget for one control spec (the one builder of every live-lab control)."""
    style = {"description_width": _LABEL_WIDTH}
    common = {"value": value, "description": s.label, "style": style,
              "layout": W.Layout(width="430px")}
    widget: W.ValueWidget
    if s.kind == "choice":
        # ToggleButtons put their description above the buttons unless the row is a
        # flex row like the sliders': make it one, so the label sits beside them.
        widget = W.ToggleButtons(
            options=list(s.options), tooltips=list(s.tooltips),
            style={**style, "button_width": "70px"}, value=value, description=s.label,
            layout=W.Layout(width="430px", display="flex", flex_flow="row", align_items="center"),
        )
    elif s.kind == "float":
        widget = W.FloatSlider(min=s.low, max=s.high, step=s.step, continuous_update=False,
                               readout_format=s.readout_format or ".2f", **common)
    else:
        widget = W.IntSlider(min=int(s.low), max=int(s.high), step=int(s.step),
                             continuous_update=False, **common)
    widget.add_class("cblab-" + s.name.replace("_", "-"))
    return widget


class LiveLab:
    """A live circuit-breaker lab in a notebook. See the module docstring.

    `variants` are server variants to run side by side ("protected" has a breaker,
    "unprotected" has it disabled); `controls` chooses which controls to show.
    Pass a running `stack` to share one between labs (it is then not stopped), or
    any `target` (`cblab.lab.target.LabTarget`), or any MCP server's URL or stdio command
    line with `tool` and `arguments` (`cblab.lab.proxy_target`: the fault proxy in front,
    the client guard's breaker). Other arguments: `LabSession`'s.
    """

    def __init__(
        self,
        params: LabParams | None = None,
        *,
        stack: Stack | None = None,
        target: LabTarget | str | Sequence[str] | None = None,
        arguments: Mapping[str, Any] | None = None,
        variants: Sequence[str] = ("protected",),
        controls: Sequence[str] = CONTROL_NAMES,
        service: str = LAB_ROUTE.service,
        tool: str = LAB_ROUTE.tool,
        breaker: str = LAB_ROUTE.breaker,
        title: str = "Live lab",
        latency_ms: float = 20.0,
        deadline: float = 2.0,
        config: CircuitBreakerConfig | Mapping[str, Any] | None = None,
        scenario: Scenario | str | None = None,
        time_scale: float | None = None,
    ) -> None:
        self.session = LabSession(
            params, target=target, arguments=arguments, stack=stack, variants=variants,
            controls=controls,
            service=service, tool=tool, breaker=breaker, latency_ms=latency_ms,
            deadline=deadline, config=config, scenario=scenario, time_scale=time_scale,
        )
        self.title = title
        self.figure: go.FigureWidget | None = None
        self.pacer: DrawPacer | None = None
        self.first_chart_s: float | None = None  # start() to the first chart with data
        self.report_path: Path | None = None
        self._start_called: float | None = None
        self._view_task: asyncio.Task[None] | None = None
        self._chart: LiveChart | None = None
        self._syncing = False
        self._note_serial = -1
        self._ended_drawn = False
        self._status_states: tuple[tuple[str, str], ...] = ()
        self._status_at = 0.0
        self.chart_rebuilds = 0  # times the chart was shown anew (see _check_first_draw)
        self._chart_problem: str | None = None
        self._build_widgets()

    # --- what the session knows -----------------------------------------------------------

    params = property(lambda self: self.session.params)
    variants = property(lambda self: self.session.variants)
    feed = property(lambda self: self.session.feed)
    scenario = property(lambda self: self.session.scenario)
    config = property(lambda self: self.session.config)
    applied = property(lambda self: self.session.applied)
    generators = property(lambda self: self.session.generators)
    error = property(lambda self: self.session.error)
    io_errors = property(lambda self: self.session.io_errors)
    autopilot_skipped = property(lambda self: self.session.autopilot_skipped)
    breaker = property(lambda self: self.session.breaker)
    service = property(lambda self: self.session.service)
    tool = property(lambda self: self.session.tool)

    @property
    def stack(self) -> Stack | None:
        return getattr(self.session.target, "stack", None)

    @property
    def finished(self) -> bool:
        """The run is over and recorded: its bounded time ran out, or Stop was pressed."""
        return self.session.finished

    @property
    def skipped_draws(self) -> int:
        return self.pacer.skipped if self.pacer is not None else 0

    # --- widgets --------------------------------------------------------------------------

    def _build_widgets(self) -> None:
        self.controls: dict[str, W.ValueWidget] = {}
        for name, value in self.session.values.items():
            widget = build_control(spec(name), value)
            widget.observe(lambda change, name=name: self._on_control(name, change["new"]),
                           names="value")
            self.controls[name] = widget

        self.stop_button = W.Button(description="Stop", icon="stop", button_style="danger",
                                    layout=W.Layout(width="110px"))
        self.stop_button.add_class("cblab-stop")
        self.stop_button.on_click(lambda _b: self.stop())
        self.export_button = W.Button(description="Export report", icon="file-text-o",
                                      layout=W.Layout(width="150px"))
        self.export_button.add_class("cblab-export")
        self.export_button.on_click(lambda _b: self._export_clicked())
        self.status = W.HTML(value=self._status_html("Starting the backend and the servers…"))
        self.status.add_class("cblab-live-status")
        self.config_message = W.HTML()
        self.config_message.add_class("cblab-config-message")
        self.export_message = W.HTML()
        self.export_message.add_class("cblab-export-message")
        # The FigureWidget is built by the view's task while the stack starts (the
        # first one in a kernel takes seconds), so the cell returns at once.
        self._chart_box = W.VBox(
            [W.HTML('<i class="cblab-muted">The charts appear when the servers are up…</i>')],
            layout=W.Layout(width="100%"),
        )

        def group(title: str, names: Sequence[str]) -> W.VBox | None:
            members = [self.controls[n] for n in names if n in self.controls]
            if not members:
                return None
            return W.VBox([W.HTML(f'<div class="cblab-group-title">{title}</div>'), *members],
                          layout=W.Layout(margin="0 28px 6px 0"))

        groups = [g for g in (
            group("Backend (the dependency)", ("error_rate", "latency_ms", "outage")),
            group(f"Load and breaker <code>{escape(self.breaker)}</code>",
                  ("rate", *BREAKER_FIELDS)),
        ) if g is not None]
        self.widget = W.VBox([
            W.HTML(_CSS + f'<div class="cblab-title">{escape(self.title)}</div>'),
            W.HBox(groups, layout=W.Layout(flex_flow="row wrap")),
            self.config_message,
            W.HBox([self.stop_button, self.export_button, self.export_message],
                   layout=W.Layout(align_items="center")),
            self.status,
            self._chart_box,
        ])
        self.widget.add_class("cblab-live")

    def _install_figure(self) -> None:
        if self.figure is None:
            from .target import StackTarget

            dependency = ("backend" if isinstance(self.session.target, StackTarget)
                          else "target")  # a server of the user's own (08)
            fig = live_figure(self.variants, self.breaker, self.session.x_range, dependency)
            if self.scenario is not None:  # shade its fault phases (04's live check)
                from .tuning import shade_faults

                shade_faults(fig, self.scenario, self.service)
            # opened with the figure in it: see `cblab.lab.whole_widget`
            self.figure = WholeFigureWidget(fig, classes=("cblab-live-chart",))
            # Interactive sessions have a browser: nothing is sent before it drew the
            # figure once (see `DrawPacer`); headless runs (CBLAB_WAIT=1) have none.
            self.pacer = DrawPacer(self.figure, expect_frontend=not self.params.wait)
            self._chart_box.children = (self.figure,)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> LiveLab:
        """Start the session and the chart updates; returns at once."""
        self._start_called = time.perf_counter()
        self.session.start()
        if self._view_task is None or self._view_task.done():
            self._view_task = asyncio.get_running_loop().create_task(
                self._view(), name="cblab-live-view")
        return self

    def stop(self) -> None:
        """Stop the run (the Stop button). The charts keep the last picture."""
        self.stop_button.disabled = True
        self.session.stop()

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The view's task on the kernel's loop (ends after the session ended)."""
        return self._view_task

    async def wait(self) -> dict[str, Any] | None:
        """Headless runs (``CBLAB_WAIT=1``): wait for the bounded run to end, check the
        states the run had to visit (``CBLAB_EXPECT_STATES``) and return the summary.

        Interactive sessions: returns None at once (waiting would freeze the controls:
        the kernel holds widget messages while a cell runs).
        """
        if not self.params.wait:
            return None
        await self.session.wait_async()
        if self._view_task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._view_task
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Per variant: calls, success rate, outcomes, current state, states seen,
        trips; after a waited-for run, checked against ``CBLAB_EXPECT_STATES``."""
        out = (self.session.check_expected_states() if self.session.ended and self.params.wait
               else self.session.summary())
        out["updates"] = self.feed.update_count
        out["first_chart_s"] = self.first_chart_s
        return out

    def events(self, source: str | None = "server") -> pd.DataFrame:
        """The recorded rows (lab time) from one source ("server", "load") or all (None)."""
        return self.session.events(source)

    def set(self, **values: Any) -> None:
        """Move controls from code, exactly as a person would: ``lab.set(error_rate=100)``."""
        for name in values:
            if name not in self.controls:
                raise KeyError(f"no control {name!r}; this lab has {sorted(self.controls)}")
        for name, value in values.items():
            self.controls[name].value = value

    def _on_control(self, name: str, value: Any) -> None:
        if self._syncing:
            return
        self.session.set(**{name: value})
        self._show_note()

    def _show_note(self) -> None:
        note = self.session.note
        if note.serial != self._note_serial:
            self._note_serial = note.serial
            cls = "bad" if note.bad else "ok"
            self.config_message.value = f'<span class="{cls}">{escape(note.text)}</span>'

    def _sync_controls(self) -> None:
        """Controls moved by the session (the autopilot) show where they are."""
        self._syncing = True
        try:
            for name, value in list(self.session.values.items()):
                widget = self.controls[name]
                if widget.value != value:
                    widget.value = value
        finally:
            self._syncing = False

    # --- the view's loop (the kernel's event loop) ----------------------------------------

    async def _view(self) -> None:
        """The view's loop; if it fails, the person sees why (in the status line, and
        the traceback on stderr, which JupyterLab's log console shows) rather than a
        chart that never comes. The session is stopped: nobody would see it."""
        try:
            await self._view_loop()
        except Exception as exc:
            traceback.print_exc()
            self.session.stop()
            self.stop_button.disabled = True
            self.status.value = self._status_html(
                f"The live view failed: {type(exc).__name__}: {exc}", bad=True)
            raise

    async def _view_loop(self) -> None:
        await asyncio.sleep(0.05)  # let the session start its processes first
        _trace(f"view task runs; session {self.session.phase}")
        self._install_figure()
        _trace(f"figure installed; session {self.session.phase}")
        traced_phase, traced_ack = self.session.phase, False
        period = 1.0 / self.params.update_hz
        next_draw = time.perf_counter()
        while True:
            ended = self.session.ended
            self._check_first_draw()
            if _TRACE and (self.session.phase != traced_phase or (
                    self.pacer is not None and self.pacer.frontend_seen != traced_ack)):
                traced_phase = self.session.phase
                traced_ack = self.pacer is not None and self.pacer.frontend_seen
                _trace(f"session {traced_phase}; browser drew the figure: {traced_ack}; "
                       f"held {self.skipped_draws} draws; sent {self.feed.update_count}")
            self._sync_controls()
            self._show_note()
            now = time.perf_counter()
            if (ended or now >= next_draw) and self._draw(force=ended):
                # on the update rate's grid; fell behind: no burst to catch up
                next_draw = max(next_draw + period, now)
            self._refresh_status()
            if ended:
                break
            # Wake for the next draw, or sooner when the pacer allows one (a browser
            # that needs longer than a period per update is served when it is ready,
            # not on the next multiple of the period).
            wait = next_draw - time.perf_counter()
            if self.pacer is not None and wait <= 0:
                wait = self.pacer.next_due_s()
            await asyncio.sleep(min(max(wait, _MIN_WAKE_S), period))
        self._ended()

    def _check_first_draw(self) -> None:
        """Show the chart anew (a new view of the same widget) when the browser drew it
        blank, stopped drawing its updates, or drew nothing for a minute (a view shown
        anew once drew without acknowledging it): see `DrawPacer.first_draw_failed`.
        anywidget re-binds a widget's module at times
        (``model.off(null, null, INITIALIZE_MARKER)``, then plotly's ``initialize``
        again), which drops the listeners a plotly view already rendered had put on the
        model: that view takes no update any more. A view
        rendered after it binds to the model as it is now, figure included."""
        pacer = self.pacer
        if pacer is None or self.figure is None or self._chart_problem is not None:
            return
        why = pacer.first_draw_failed()
        if why is None:
            return
        if self.chart_rebuilds >= _MAX_CHART_REBUILDS:
            self._chart_problem = ("The browser did not draw the chart: run this cell again "
                                   "(or reload the page).")
            _trace(f"chart still {why} after showing it {self.chart_rebuilds} more times")
            return
        self.chart_rebuilds += 1
        _trace(f"the browser's chart was {why}: showing it anew "
               f"({self.chart_rebuilds} of {_MAX_CHART_REBUILDS})")
        pacer.close()
        self.pacer = DrawPacer(self.figure, expect_frontend=not self.params.wait)
        self._chart_box.children = ()
        self._chart_box.children = (self.figure,)

    def _ended(self) -> None:
        self.stop_button.disabled = True
        for widget in self.controls.values():
            widget.disabled = True
            widget.add_class("cblab-ended")
        session = self.session
        if session.phase == "failed":
            self.status.value = self._status_html(
                f"The live loop failed: {session.error!r}", bad=True)
        elif session.phase == "stopped":
            self.status.value = self._status_html("Stopped: the recording is complete.")
        elif self.scenario is not None:
            self.status.value = self._status_html(
                f"Finished: the {self.scenario.total_duration_s:g} s scenario has ended.")
        else:
            self.status.value = self._status_html("Finished: the run is over.")

    def _draw(self, *, force: bool = False) -> bool:
        """One chart update, unless the browser is still busy; True if one went out."""
        fig, pacer = self.figure, self.pacer
        if fig is None or pacer is None or self.session.started_at is None:
            return False
        if not force and not pacer.ready():
            return False
        began = time.perf_counter()
        arrays = self.session.arrays()
        x_range = self.session.x_range
        if self._chart is None or self._chart.fig is not fig:
            self._chart = LiveChart(fig, legend_variant=self.variants[0])
        self._chart.refresh(arrays, x_range)  # a full replot only when an axis or legend changes
        pacer.sent()
        self.feed.mark_update(time.perf_counter() - began)
        if self.first_chart_s is None and self._start_called is not None and any(
            xy.x for xy in arrays["latency"].values()
        ):
            self.first_chart_s = time.perf_counter() - self._start_called
        return True

    def _refresh_status(self) -> None:
        """The status line, rewritten at once when a breaker changes state, else about
        once a second: every rewrite is a re-render and a relayout of the page, and
        its figures (seconds, rates) change too fast to read anyway."""
        if self.session.started_at is None and not self.session.ended:
            waited = time.perf_counter() - (self._start_called or time.perf_counter())
            html = self._status_html(f"Starting the backend and the servers… {waited:.0f} s")
        else:
            now = time.perf_counter()
            states = tuple(sorted(dict(self.feed.state).items()))  # a copy: the lab's thread writes
            if states == self._status_states and now - self._status_at < _STATUS_EVERY_S:
                return
            self._status_states, self._status_at = states, now
            html = self._status_html(self._chart_problem, bad=True)
        if html != self.status.value:
            self.status.value = html

    # --- status and export ----------------------------------------------------------------

    def _status_html(self, note: str | None = None, *, bad: bool = False) -> str:
        parts = []
        status = self.session.status()
        for variant in self.variants:
            info = status[variant]
            state = info.get("state") or "closed"
            colour = STATE_COLORS.get(state, NO_BREAKER_COLOR)
            label = STATE_NAMES.get(state, state)
            if not info.get("protected", True):
                label, colour = "no breaker", "#6b7280"
            recent, total = info.get("recent_success"), info.get("success_rate")
            parts.append(
                f'<b>{escape(variant)}</b> <span class="badge" data-state="{state}" '
                f'style="background:{colour}">{label}</span> '
                f'<span class="muted">success {_pct(recent)} in the last 5 s '
                f"({_pct(total)} of {info.get('calls', 0)} calls since the start) · "
                f"in flight {info.get('in_flight', 0)} · trips {info.get('trips', 0)} · "
                f"failed probes {info.get('probe_failures', 0)}</span>"
            )
        drawn = self.pacer.drawn_rate() if self.pacer is not None else None
        rate = (f"{drawn:.1f} chart updates/s drawn" if drawn is not None
                else f"{self.feed.update_rate():.1f} chart updates/s")
        tail = f'<span class="muted">{self.session.lab_now():.0f} s · {rate}</span>'
        line = " &nbsp;│&nbsp; ".join([*parts, tail])
        if note:
            colour = "#b42318" if bad else "#374151"
            line = f'<span style="color:{colour};font-weight:600">{escape(note)}</span> ' + line
        return line

    def _export_clicked(self) -> None:
        self.export_message.value = "<i>writing the report…</i>"
        try:
            path = self.export_report()
        except Exception as exc:  # shown to the person who clicked
            self.export_message.value = (
                f'<span style="color:#b42318">Export failed: {escape(str(exc))}</span>')
            return
        from .links import report_link_html

        self.export_message.value = report_link_html(path)

    def export_report(self, directory: str | Path | None = None) -> Path:
        """Save the recorded rows as a run (`cblab.runs.save_run`) and write its HTML
        report; returns the report's path. Default directory: ``reports/`` here."""
        from .record import export_session

        self.report_path = export_session(self.session, directory)
        return self.report_path

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def __repr__(self) -> str:
        return f"LiveLab(variants={self.variants}, {self.session.phase})"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"
