"""Pace a FigureWidget's updates by what the browser has drawn, and by what it costs.

Every update of a `plotly.graph_objects.FigureWidget` is a full redraw in the
browser (plotly replots every subplot, axis and legend). A slow browser (a busy
laptop, software rendering) would otherwise build a backlog that delays
everything queued behind it, slider messages included, and a browser that only
just keeps up spends its whole main thread on the chart, so a click waits behind
a redraw. The browser's plotly renderer acknowledges each applied trace edit
with its id; this adapter

- keeps at most `max_undrawn` updates in flight;
- measures what one update costs the browser (send -> acknowledgement of an update
  sent while nothing else was in flight) and spaces updates so the chart takes at
  most `max_busy` of the browser's time: the page stays free to answer the person;
- counts what the browser drew (the rate a person sees, which the status line shows);
- when a browser is expected (`expect_frontend`, interactive sessions), sends nothing
  until it has drawn the figure once (its first acknowledgement): plotly's view
  listens for updates before its first, asynchronous, draw has finished, and an
  update arriving meanwhile left a chart that never drew (reproduced in bench_lab
  under load). After `first_draw_wait_s`
  without one it sends anyway (nobody is watching: a headless run);
- tells when that first draw failed (`first_draw_failed()`): the view drew a figure
  without its traces, or an expected browser drew nothing within `first_draw_wait_s`.
  Under load, plotly's anywidget view can render from the model's empty defaults:
  anywidget holds the model's state updates (the figure's data and layout, its CSS
  classes) until the widget's 5 MB module has loaded, and the view's first draw can
  run before they are applied. That chart stays blank for good, each later update
  restyling traces it does not have (issue 19: 03's and 04's walks waiting 180 s).
  The first acknowledgement shows it: one delta per trace the view drew, none then.
  The live lab's widget now opens with its figure in it (`cblab.lab.whole_widget`).
  A view that drew the figure can still stop taking updates ("stalled": none of
  those sent over `stall_s` acknowledged; seen at load 8-15, 14-18 updates received,
  none drawn): anywidget re-binds the module at times, dropping the listeners plotly's
  view had put on the model. `LiveLab` then shows the chart anew (a new view).

This is the only place that reads plotly's private widget protocol, checked
against plotly 6/7's `basewidget.py`:

- ``fig._last_trace_edit_id``: the id of the newest trace edit sent to the browser;
- the ``_js2py_traceDeltas`` trait: set by the browser after it applied an edit,
  ``{"trace_edit_id": N, "trace_deltas": [...]}``, one delta per trace it holds
  (in cblab's `WholeFigureWidget`, each only the trace's uid: `cblab.lab.lean_acks`).

A renamed private degrades to no pacing (every draw goes out), never to an error.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["DrawPacer"]


class DrawPacer:
    """`ready()` before a draw, `sent()` after it; `drawn_rate()` is what the browser
    drew per second, `draw_cost_s()` what one update costs it. Headless runs never
    acknowledge: pacing starts with the first acknowledgement, and a draw is never
    held back for more than `max_hold_s`."""

    # 3: every update waiting for the browser is drawn before anything queued behind
    # it, a widget's answer to a click included (with 6 waiting, clicks took 3-8 s to
    # show under load); with 2, late acknowledgements held back draws Chromium could
    # make (3.85 updates/s against 5.7 with 6, bench_lab).
    # max_busy 0.5: issue 19's target for the page's main thread; send ->
    # acknowledgement also holds the round trip through the kernel and the server, so
    # the browser's own share stays below it.
    def __init__(self, figure: Any, *, max_undrawn: int = 3, max_hold_s: float = 2.0,
                 max_busy: float = 0.5, expect_frontend: bool = False,
                 first_draw_wait_s: float = 60.0, stall_s: float = 30.0,
                 clock: Callable[[], float] = time.perf_counter) -> None:
        if not 0 < max_busy <= 1:
            raise ValueError(f"max_busy must be in (0, 1], got {max_busy!r}")
        self.figure = figure
        self.max_undrawn = max_undrawn
        self.max_hold_s = max_hold_s
        self.max_busy = max_busy
        self.clock = clock
        self.expect_frontend = expect_frontend
        self.first_draw_wait_s = first_draw_wait_s
        self.stall_s = stall_s
        self._first_unacked: float | None = None  # when the oldest undrawn update went out
        self.created = clock()
        self.acked_id = 0
        self.frontend_seen = False
        self.blank_draw = False  # the first draw held fewer traces than the figure
        self.skipped = 0  # draws held back while the browser caught up
        # (clock(), acknowledged id): the browser acknowledges some edits, each
        # acknowledgement covering every edit up to its id.
        self.drawn: deque[tuple[float, int]] = deque(maxlen=600)
        # send -> acknowledgement of lone updates: what one redraw costs the browser
        self.costs: deque[float] = deque(maxlen=9)
        self._lone: tuple[int, float] | None = None  # (edit id, sent at) of a lone update
        self._last_sent = 0.0
        try:
            figure.observe(self._on_ack, names="_js2py_traceDeltas")
        except Exception:  # a plotly without the trait: no pacing
            pass

    def _edit_id(self) -> int:
        return int(getattr(self.figure, "_last_trace_edit_id", 0) or 0)

    def _on_ack(self, change: dict[str, Any]) -> None:
        message = change.get("new")
        if not message:
            return
        edit_id = int(message.get("trace_edit_id") or 0)
        now = self.clock()
        if not self.frontend_seen:
            deltas = message.get("trace_deltas")
            traces = getattr(self.figure, "data", None)
            self.blank_draw = (isinstance(deltas, list) and traces is not None
                               and len(deltas) < len(traces))
        if edit_id > self.acked_id:
            self.acked_id = edit_id
            self._first_unacked = None if edit_id >= self._edit_id() else now
            self.drawn.append((now, edit_id))
        if self._lone is not None and edit_id >= self._lone[0]:
            self.costs.append(now - self._lone[1])
            self._lone = None
        self.frontend_seen = True

    def close(self) -> None:
        """Stop listening to the figure's acknowledgements (a new pacer takes over)."""
        try:
            self.figure.unobserve(self._on_ack, names="_js2py_traceDeltas")
        except Exception:  # a plotly without the trait, or a stand-in figure
            pass

    def first_draw_failed(self) -> str | None:
        """Why this figure's view will not show it (show a new figure instead), or
        None: "blank" when the browser drew it without its traces, "silent" when an
        expected browser has drawn nothing for `first_draw_wait_s`, "stalled" when it
        drew the figure but none of the updates sent over the last `stall_s`."""
        if self.blank_draw:
            return "blank"
        now = self.clock()
        if (self.frontend_seen and self._first_unacked is not None
                and now - self._first_unacked >= self.stall_s):
            return "stalled"
        if (self.expect_frontend and not self.frontend_seen
                and now - self.created >= self.first_draw_wait_s):
            return "silent"
        return None

    def in_flight(self) -> int:
        return self._edit_id() - self.acked_id

    def draw_cost_s(self) -> float | None:
        """The median time the browser took to draw (and acknowledge) one update sent
        while it had nothing else to do; None before it has drawn one."""
        return statistics.median(self.costs) if self.costs else None

    def ready(self) -> bool:
        """False while an expected browser has not drawn the figure yet, while it has
        more than `max_undrawn` updates still to draw, or while drawing the next one
        would take more than `max_busy` of its time."""
        now = self.clock()
        if not self.frontend_seen:
            if not self.expect_frontend or now - self.created >= self.first_draw_wait_s:
                return True
            self.skipped += 1
            return False
        if now - self._last_sent >= self.max_hold_s:
            return True
        cost = self.draw_cost_s()
        if self.in_flight() <= self.max_undrawn and (
                cost is None or now - self._last_sent >= cost / self.max_busy):
            return True
        self.skipped += 1
        return False

    def next_due_s(self) -> float:
        """Seconds until the cost budget allows the next update (0: now)."""
        cost = self.draw_cost_s()
        if not self.frontend_seen or cost is None:
            return 0.0
        return max(self._last_sent + cost / self.max_busy - self.clock(), 0.0)

    def sent(self) -> None:
        now = self.clock()
        edit_id = self._edit_id()
        if edit_id == self.acked_id + 1:
            self._lone = (edit_id, now)  # the browser had nothing else to draw
        elif self._lone is not None and edit_id > self._lone[0]:
            self._lone = None  # queued behind it: its acknowledgement would time both
        self._last_sent = now
        if self._first_unacked is None and edit_id > self.acked_id:
            self._first_unacked = now

    def drawn_rate(self, over_s: float = 5.0) -> float | None:
        """Updates the browser drew per second over the last `over_s` s (None: no
        browser has acknowledged anything, e.g. a headless run)."""
        if not self.frontend_seen:
            return None
        now = self.clock()
        recent = [edit_id for t, edit_id in self.drawn if now - t <= over_s]
        older = [edit_id for t, edit_id in self.drawn if now - t > over_s]
        if not recent:
            return 0.0
        since = older[-1] if older else recent[0] - 1
        return (recent[-1] - since) / over_s
